"""``join:queue`` over Socket.IO (python-socketio's AsyncClient, both transports) against a
real server process and real Redis: a queued buyer gets ``queue:position`` while waiting,
``queue:admitted`` with a token that holds, and the one behind gets ``queue:sold-out``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, bearer, create_event, register, unique_email
from tests.integration.test_socketio import TRANSPORTS, Frame, probe

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _is(name: str) -> Any:
    return lambda f: f["event"] in (name, "error")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_join_queue_over_socketio_gets_position_admitted_and_sold_out(
    api: ApiServer, transport: str
) -> None:
    org, _ = register(api, unique_email("sqo"), role="ORGANIZADOR")
    event = create_event(api, org, [("A", 10.0, 1)])
    eid, cat = event["id"], event["categorias"][0]["id"]
    r = httpx.put(
        f"{api.url}/api/events/{eid}/queue",
        json={"abreEn": _at(3), "entradasPorAdmision": 1},
        headers=bearer(org),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    buyers = [register(api, unique_email("sqb"))[0] for _ in range(2)]
    for token in buyers:
        r = httpx.post(f"{api.url}/api/events/{eid}/queue/join", headers=bearer(token))
        assert r.status_code == 201, r.text

    # Not signed in: join:queue is refused with an error event, never a server error.
    anon = await probe(api, transport)
    try:
        await anon.emit("join:queue", {"eventId": eid})
        refused = await anon.until(_is("error"))
        assert refused[-1]["event"] == "error"
        assert refused[-1]["data"]["code"] == "unauthorized"
    finally:
        await anon.close()

    sockets = [await probe(api, transport, token) for token in buyers]
    try:
        for s in sockets:
            await s.emit("join:queue", {"eventId": eid})
            got = await s.until(_is("queue:position"), timeout=10)
            first: Frame = got[-1]
            assert first["event"] == "queue:position", got
            assert first["data"]["eventoId"] == eid
            assert set(first["data"]) >= {
                "posicion",
                "delante",
                "esperaEstimadaSegundos",
                "entradasRestantes",
            }
            assert first["data"]["entradasRestantes"] == 1
            # The first position goes out at once, before the join's ack.
            if not any(f["event"] == "joined" for f in got):
                got += await s.until(_is("joined"))
            assert any(f["event"] == "joined" and f["data"]["room"] == "queue" for f in got)

        # The opening orders the two by the seed: exactly one is admitted (1 ticket,
        # 1 per admission) and is told over its socket.
        waits = [asyncio.ensure_future(s.until(_is("queue:admitted"), timeout=20)) for s in sockets]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.5)  # a second admission, if any, would arrive by now
        done = {w for w in waits if w.done()}
        for w in waits:
            if not w.done():
                w.cancel()
        assert len(done) == 1, "exactly one buyer is admitted"
        winner = waits.index(next(iter(done)))
        loser = 1 - winner
        frame = waits[winner].result()[-1]
        assert frame["event"] == "queue:admitted", frame
        assert frame["data"]["eventoId"] == eid and frame["data"]["admisionExpiraEn"]
        r = httpx.post(
            f"{api.url}/api/orders",
            json={"eventoId": eid, "tickets": [{"categoriaId": cat, "cantidad": 1}]},
            headers={**bearer(buyers[winner]), "Admission-Token": frame["data"]["admisionToken"]},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        r = httpx.put(
            f"{api.url}/api/orders/{r.json()['id']}/confirm",
            json={"metodoPago": "card", "transactionId": "tx-sio-queue"},
            headers=bearer(buyers[winner]),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        # Sold: the buyer still waiting is told so over Socket.IO.
        got = await sockets[loser].until(_is("queue:sold-out"), timeout=15)
        assert got[-1]["event"] == "queue:sold-out" and got[-1]["data"]["eventoId"] == eid
        assert not [f for f in got if f["event"] == "queue:admitted"]
    finally:
        for s in sockets:
            await s.close()
