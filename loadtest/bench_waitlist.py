"""Waitlist offer latency: from a release (a hold cancelled over HTTP) to the
``waitlist:offer`` frame on the waiting buyer's WebSocket.

Starts a real redis-server and ``onsale serve``; an organizer's event with ``--buyers``
tickets, all held by one account; ``--buyers`` buyers join the sold-out category's waitlist
and open ``/ws`` with ``join:user``. Then each hold is cancelled in turn (``--gap``
seconds apart) and the time from sending the cancel to the buyer's frame is recorded
(one client clock on both ends). The audit runs at the end.

    python -m loadtest.bench_waitlist [--buyers 200] [--gap 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

from engine.redis_server import RedisServer
from loadtest.common import machine, percentile, register, server_env, wait_ready, write_result

REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(port: int, buyers: int, gap: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    tag = uuid.uuid4().hex[:8]
    org = register(base, f"org-{tag}@bench.test", "ORGANIZADOR")
    holder = register(base, f"holder-{tag}@bench.test")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post(
            "/api/events",
            headers={"Authorization": f"Bearer {org}"},
            json={
                "nombre": "waitlist bench",
                "fecha": "2030-01-01T00:00:00Z",
                "ubicacion": "Lab",
                "capacidadTotal": buyers,
                "precioBase": 1,
                "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": buyers}],
            },
        )
        r.raise_for_status()
        event = r.json()
        cat = event["categorias"][0]["id"]
        holds = []
        for _ in range(buyers):
            r = await http.post(
                "/api/orders",
                headers={"Authorization": f"Bearer {holder}"},
                json={
                    "eventoId": event["id"],
                    "tickets": [{"categoriaId": cat, "cantidad": 1}],
                },
            )
            r.raise_for_status()
            holds.append(r.json()["id"])
        tokens = [register(base, f"w{i}-{tag}@bench.test") for i in range(buyers)]
        sockets = []
        for token in tokens:
            r = await http.post(
                f"/api/events/{event['id']}/waitlist",
                headers={"Authorization": f"Bearer {token}"},
                json={"categoriaId": cat, "cantidad": 1},
            )
            r.raise_for_status()
            me = (
                await http.get("/api/auth/profile", headers={"Authorization": f"Bearer {token}"})
            ).json()
            ws = await websockets.connect(
                f"ws://127.0.0.1:{port}/ws?token={token}", ping_interval=None
            )
            await ws.send(json.dumps({"event": "join:user", "data": {"userId": me["id"]}}))
            sockets.append(ws)
        await asyncio.sleep(2.0)  # the hub's user-room refresh follows the event

        async def offer_frame(ws: Any) -> float:
            while True:
                msg = json.loads(await ws.recv())
                if msg["event"] == "waitlist:offer":
                    return time.perf_counter()

        lags: list[float] = []
        missed = 0
        for order_id, ws in zip(holds, sockets, strict=True):
            waiter = asyncio.ensure_future(offer_frame(ws))
            sent = time.perf_counter()
            r = await http.put(
                f"/api/orders/{order_id}/cancel", headers={"Authorization": f"Bearer {holder}"}
            )
            r.raise_for_status()
            try:
                got = await asyncio.wait_for(waiter, 5)
                lags.append((got - sent) * 1000)
            except TimeoutError:
                missed += 1
            await asyncio.sleep(gap)
        for ws in sockets:
            await ws.close()
    lags.sort()
    return {
        "event": event["id"],
        "buyers": buyers,
        "offers": len(lags),
        "missed": missed,
        "p50_ms": round(percentile(lags, 0.5), 2),
        "p99_ms": round(percentile(lags, 0.99), 2),
        "max_ms": round(lags[-1], 2) if lags else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.01)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-waitlist-"))
    redis = RedisServer(data_dir=tmp / "redis", appendonly=False).start()
    port = _port()
    env = server_env(redis.url, tmp / "data", port, WAITLIST_OFFER_MINUTES="10")
    api = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        result = asyncio.run(run(port, args.buyers, args.gap))
        audit = subprocess.run(
            [sys.executable, "-m", "api.cli", "audit", "--event", result["event"]],
            cwd=REPO,
            env=env,
            capture_output=True,
        )
        result["audit_clean"] = audit.returncode == 0
        result["machine"] = machine()
    finally:
        api.terminate()
        api.wait(15)
        redis.stop()
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    write_result("bench_waitlist", result)


if __name__ == "__main__":
    main()
