"""engine/aof.py: the embedded server's AOF is rewritten between sales, not during them
(the policy on INFO fields, and a real redis-server rewriting when asked)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from engine.aof import MIB, AofCompactor, AofPolicy, rewrite_reason
from engine.redis_server import RedisServer

POLICY = AofPolicy()


def info(current: int, base: int, **extra: int) -> dict[str, int]:
    return {"aof_enabled": 1, "aof_current_size": current, "aof_base_size": base, **extra}


@pytest.mark.parametrize(
    ("fields", "quiet_for", "reason"),
    [
        (info(200 * MIB, 64 * MIB), 2, "quiet"),  # doubled, quiet for two looks
        (info(200 * MIB, 64 * MIB), 1, None),  # doubled, but a lull of one look in a sale
        (info(200 * MIB, 64 * MIB), 0, None),  # doubled, busy: not in the middle of a sale
        (info(256 * MIB, 64 * MIB), 0, "bound"),  # four times over: even while busy
        (info(60 * MIB, 10 * MIB), 5, None),  # below the minimum size
        (info(100 * MIB, 60 * MIB), 5, None),  # not grown enough since the last rewrite
        (info(300 * MIB, 64 * MIB, aof_rewrite_in_progress=1), 5, None),
        (info(300 * MIB, 64 * MIB, aof_rewrite_scheduled=1), 5, None),
        ({"aof_enabled": 0}, 5, None),
    ],
)
def test_the_policy(fields: dict[str, int], quiet_for: int, reason: str | None) -> None:
    assert rewrite_reason(fields, POLICY, quiet_for) == reason


def test_a_quiet_grown_aof_is_rewritten_and_a_busy_one_is_not(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", compact_aof=True).start()
    client = redis.Redis.from_url(server.url)
    try:
        assert server.compactor is not None  # the embedded server's, with its own trigger off
        assert client.config_get("auto-aof-rewrite-percentage") == {
            "auto-aof-rewrite-percentage": "0"
        }
        for i in range(2000):
            client.set(f"k{i % 10}", "x" * 200)  # the AOF grows, the dataset does not
        before = int(client.info("persistence")["aof_base_size"])
        tiny = AofPolicy(min_size=1024, quiet_checks=1, quiet_ops=1_000_000_000, force_factor=1e9)
        busy = AofCompactor(server.url, AofPolicy(min_size=1024, quiet_ops=0, force_factor=1e9))
        quiet = AofCompactor(server.url, tiny)
        try:
            assert busy.check() is None and busy.rewrites == 0
            assert quiet.check() == "quiet" and quiet.rewrites == 1
            deadline = time.monotonic() + 20
            while int(client.info("persistence")["aof_rewrite_in_progress"]):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            after = client.info("persistence")
            assert int(after["aof_base_size"]) != before
            assert int(after["aof_current_size"]) < 2000 * 200  # compacted to ~10 keys
        finally:
            busy.stop()
            quiet.stop()
    finally:
        client.close()
        server.stop()
    assert server.compactor is None
