"""CONFIRM_DURABILITY=replica against a real replica that stops answering.

Redis' ``WAIT`` counts only the writes of the connection that sends it, so it must follow
the confirm on the connection that ran it: a WAIT sent on any other connection returns at
once whatever the replica has. A replica frozen with SIGSTOP must make the confirm answer
503 ``not_replicated`` once the wait runs out, retry-safe: retried while the replica is
still frozen it is 503 again, retried after SIGCONT it is 200, and the order is CONFIRMED
once, its tickets sold once, and on the replica.

Standalone: a primary and a replica, ``onsale serve`` over real HTTP. Cluster: the engine
on a local Redis Cluster, the replica of the event's primary frozen.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from redis import Redis as SyncRedis
from redis.asyncio.cluster import RedisCluster

from engine import keys
from engine.core import Engine, EngineConfig
from engine.errors import NotReplicated
from engine.models import CategorySpec, Order
from engine.redis_server import LocalCluster, RedisServer
from tests.faults.conftest import (
    assert_problem,
    auth,
    create_event,
    register,
    run_audit,
    start_api,
    wait_until,
)

pytestmark = pytest.mark.slow

WAIT_S = 1.0  # CONFIRM_STORE_TIMEOUT_SECONDS: the bound of the confirm's WAIT


def _pid(server: RedisServer) -> int:
    assert server.process is not None
    return server.process.pid


def _synced(replica: RedisServer) -> bool:
    with SyncRedis.from_url(replica.url) as r:
        info = r.info("replication")
    return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")


def _order(server: RedisServer, order_id: str, *, cluster: bool = False) -> Order | None:
    event_id = order_id.split(".", 1)[0]
    with SyncRedis.from_url(server.url) as r:
        if cluster:
            r.execute_command("READONLY")  # a cluster replica answers reads only after it
        raw = r.hget(keys.orders(event_id), order_id)
    return msgspec.json.decode(raw, type=Order) if raw else None


def _confirmed_in_log(server: RedisServer, event_id: str, order_id: str) -> int:
    with SyncRedis.from_url(server.url) as r:
        entries = r.xrange(keys.order_log(event_id))
    statuses = [msgspec.json.decode(f[b"order"], type=Order) for _, f in entries]
    return sum(1 for o in statuses if o.id == order_id and o.status == "CONFIRMED")


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(data_dir=tmp_path / "primary").start()
    replica = RedisServer(
        data_dir=tmp_path / "replica",
        appendonly=False,
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    )
    try:
        replica.start()
        assert wait_until(lambda: _synced(replica), 30), "the replica never synced"
        yield primary, replica
    finally:
        if replica.process is not None and replica.process.poll() is None:
            os.kill(_pid(replica), signal.SIGCONT)
        replica.stop()
        primary.stop()


def test_a_confirm_waits_for_the_replica_and_is_retry_safe_when_it_is_frozen(
    primary_and_replica: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    primary, replica = primary_and_replica
    server = start_api(
        tmp_path,
        primary,
        CONFIRM_DURABILITY="replica",
        CONFIRM_STORE_TIMEOUT_SECONDS=str(WAIT_S),
        RUN_WRITER="false",  # the writer would trim the order log this test counts
    )
    try:
        org, _ = register(server, "org-replica@example.com", role="ORGANIZADOR")
        buyer, _ = register(server, "buyer-replica@example.com")
        event = create_event(server, org, [("A", 10, 10)])
        cat = event["categorias"][0]["id"]
        body = {"eventoId": event["id"], "tickets": [{"categoriaId": cat, "cantidad": 2}]}
        with httpx.Client(base_url=server.url, headers=auth(buyer), timeout=30) as http:
            first, second = (http.post("/api/orders", json=body) for _ in range(2))
            assert first.status_code == second.status_code == 201, (first.text, second.text)
            first_id, second_id = first.json()["id"], second.json()["id"]

            def confirm(order_id: str, tx: str) -> tuple[httpx.Response, float]:
                started = time.monotonic()
                r = http.put(
                    f"/api/orders/{order_id}/confirm",
                    json={"metodoPago": "card", "transactionId": tx},
                )
                return r, time.monotonic() - started

            # Replica up: 200, and the replica has the sale the moment the answer comes.
            r, _ = confirm(first_id, "tx-1")
            assert r.status_code == 200 and r.json()["estado"] == "CONFIRMED", r.text
            on_replica = _order(replica, first_id)
            assert on_replica is not None and on_replica.status == "CONFIRMED"

            # Past the replica's once-a-second REPLCONF ACK: it has acknowledged every write
            # so far, so a WAIT on any connection but the confirm's would return at once.
            time.sleep(1.5)
            os.kill(_pid(replica), signal.SIGSTOP)
            r, took = confirm(second_id, "tx-2")
            body_503 = assert_problem(r, (503,))
            assert body_503.get("code") == "not_replicated", body_503
            assert r.headers.get("retry-after"), r.headers
            assert WAIT_S * 0.9 <= took < WAIT_S + 4, took
            stored = _order(primary, second_id)
            assert stored is not None and stored.status == "CONFIRMED"  # on the primary
            r, took = confirm(second_id, "tx-2")  # retried while still frozen: 503 again
            assert_problem(r, (503,))
            assert took >= WAIT_S * 0.9, took

            os.kill(_pid(replica), signal.SIGCONT)
            r, took = confirm(second_id, "tx-2")
            assert r.status_code == 200 and r.json()["estado"] == "CONFIRMED", r.text
            on_replica = _order(replica, second_id)
            assert on_replica is not None and on_replica.status == "CONFIRMED"
            print(f"retry after SIGCONT answered 200 in {took * 1000:.0f} ms")

            # Confirmed once: one CONFIRMED log entry, its tickets sold once.
            assert _confirmed_in_log(primary, event["id"], second_id) == 1
            r = http.get(f"/api/events/{event['id']}")
            assert r.status_code == 200 and r.json()["categorias"][0]["disponible"] == 6, r.text
        # 6 available, nothing held (both confirmed) and the audit's total check: 4 sold.
        cli = run_audit(primary.url, server.env)
        assert cli.returncode == 0, cli.stdout + cli.stderr
    finally:
        server.stop()


# -- Redis Cluster: WAIT goes to the primary that ran the confirm -------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def _replica_of(cluster: LocalCluster, key: str) -> tuple[RedisServer, RedisServer]:
    """The primary that owns ``key``'s slot and its replica. Polled: a node's CLUSTER
    SLOTS can list a slot's primary before it lists the replica (gossip), which failed one
    fresh-clone run with an empty replica list."""
    by_port = {n.port: n for n in cluster.nodes}
    deadline = time.monotonic() + 20
    with SyncRedis(port=cluster.nodes[0].port) as r:
        slot = r.execute_command("CLUSTER", "KEYSLOT", key)
        while time.monotonic() < deadline:
            for start, end, owner, *replicas in r.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end and replicas:
                    return by_port[int(owner[1])], by_port[int(replicas[0][1])]
            time.sleep(0.1)
    raise AssertionError(f"no primary with a replica owns slot {slot}")


async def test_on_a_cluster_the_wait_runs_on_the_primary_that_confirmed(
    cluster: LocalCluster,
) -> None:
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    for node in client.get_primaries():
        await client.flushall(target_nodes=node)
    engine = Engine(client, EngineConfig(hold_ttl_ms=600_000))
    await engine.start()
    _, replica = _replica_of(cluster, keys.orders("repl"))
    try:
        await engine.arm_event("repl", [CategorySpec(id="a", name="A", price=1, total=10)])
        held = [(await engine.hold("repl", f"u{i}", [("a", 1)])).order.id for i in range(2)]
        done = await engine.confirm(
            held[0], "u0", payment_method="card", transaction_id="t0", replicas=1,
            replica_timeout_ms=2000,
        )  # fmt: skip
        assert done.created
        assert (
            on_replica := _order(replica, held[0], cluster=True)
        ) and on_replica.status == "CONFIRMED"

        os.kill(_pid(replica), signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(NotReplicated):
            await engine.confirm(
                held[1], "u1", payment_method="card", transaction_id="t1", replicas=1,
                replica_timeout_ms=500,
            )  # fmt: skip
        assert time.monotonic() - started >= 0.45
        os.kill(_pid(replica), signal.SIGCONT)
        again = await engine.confirm(
            held[1], "u1", payment_method="card", transaction_id="t1", replicas=1,
            replica_timeout_ms=5000,
        )  # fmt: skip
        assert not again.created and again.order.status == "CONFIRMED"
        assert (
            on_replica := _order(replica, held[1], cluster=True)
        ) and on_replica.status == "CONFIRMED"
        stock = await engine.stock("repl")
        assert stock is not None and stock.categories[0].sold == 2
    finally:
        if replica.process is not None and replica.process.poll() is None:
            os.kill(_pid(replica), signal.SIGCONT)
        await client.aclose()
