"""A category created, renamed, repriced, resized or removed reaches every viewer of the
event's room, over /ws and Socket.IO, as the frames docs/socketio.md (*Room frames*)
gives: ``event:update {eventoId, cambios: {categoria}}`` / ``{categoriaEliminada}`` from
the script that made the change (lua/adjust_category), beside the stock frames."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, bearer, create_event, register
from tests.integration.test_socketio import Probe
from tests.integration.test_ws import connect, drain, joined, until, ws_url

pytestmark = pytest.mark.asyncio

Frame = dict[str, Any]


def key(frame: Frame) -> tuple[int, int]:
    ms, _, seq = str(frame["id"]).partition("-")
    return int(ms), int(seq)


class Viewers:
    """One /ws socket and one Socket.IO client (the WebSocket transport) in the room."""

    def __init__(self, ws: Any, sio: Probe, event_id: str) -> None:
        self.ws, self.sio, self.event_id = ws, sio, event_id

    async def next_frames(self, last: str) -> tuple[list[Frame], list[Frame]]:
        """What each got up to and including the first frame of event ``last`` for this
        event, then anything more within half a second (there must be nothing)."""

        def done(m: Frame) -> bool:
            return bool(m["event"] == last and m["data"].get("eventoId") == self.event_id)

        got_ws = await until(self.ws, done) + await drain(self.ws, 0.5)
        got_sio = await self.sio.until(done) + await self.sio.drain(0.5)
        return got_ws, got_sio


def shapes(frames: list[Frame]) -> list[tuple[str, Any]]:
    return [(f["event"], f["data"]) for f in frames]


def category_of(api: ApiServer, event_id: str, category_id: str) -> dict[str, Any] | None:
    r = httpx.get(f"{api.url}/api/events/{event_id}/categories")
    assert r.status_code == 200, r.text
    return next((c for c in r.json() if c["id"] == category_id), None)


async def test_category_changes_reach_ws_and_socketio_viewers_as_documented(
    api: ApiServer,
) -> None:
    org, _ = register(api, "catfeed-org@example.com", role="ORGANIZADOR")
    event = create_event(api, org, [("Pista", 30.0, 20)], capacity=100)
    eid = event["id"]
    base = f"{api.url}/api/events/{eid}/categories"
    sio = await Probe().connect(api.url, "websocket")
    try:
        async with connect(ws_url(api)) as ws:
            first = await joined(ws, eid)
            cursor = first[-1]["data"]["id"]  # where a resuming client would be
            await sio.joined(eid)
            await sio.drain(0.3)
            viewers = Viewers(ws, sio, eid)

            # Created: the category as GET .../categories shows it, then its stock.
            r = httpx.post(
                base,
                json={
                    "nombre": "VIP",
                    "precio": 50,
                    "cantidadTotal": 10,
                    "beneficios": ["Early entry", "Bar"],
                },
                headers=bearer(org),
            )
            assert r.status_code == 201, r.text
            cid = r.json()["id"]
            vip = {
                "id": cid,
                "nombre": "VIP",
                "precio": 50,
                "cantidadTotal": 10,
                "beneficios": ["Early entry", "Bar"],
                "disponible": 10,
            }
            assert category_of(api, eid, cid) == vip
            told = [dict(vip)]
            created = [
                ("event:update", {"eventoId": eid, "cambios": {"categoria": vip}}),
                ("ticket:stock-update", {"eventoId": eid, "categoriaId": cid, "nuevoStock": 10}),
            ]
            got_ws, got_sio = await viewers.next_frames("ticket:stock-update")
            assert shapes(got_ws) == created
            assert shapes(got_sio) == created
            # Socket.IO: the seed's payload as the first argument, the stream id second.
            assert [f["id"] for f in got_sio] == [f["id"] for f in got_ws]
            assert key(got_ws[0]) < key(got_ws[1])

            # Renamed and repriced, benefits cleared: one event:update, no stock frame.
            r = httpx.put(
                f"{base}/{cid}",
                json={"nombre": "VIP Gold", "precio": 65.5, "beneficios": []},
                headers=bearer(org),
            )
            assert r.status_code == 200, r.text
            vip |= {"nombre": "VIP Gold", "precio": 65.5, "beneficios": []}
            assert category_of(api, eid, cid) == vip
            told.append(dict(vip))
            renamed = [("event:update", {"eventoId": eid, "cambios": {"categoria": vip}})]
            got_ws, got_sio = await viewers.next_frames("event:update")
            assert shapes(got_ws) == renamed
            assert shapes(got_sio) == renamed

            # Resized: the new total and stock, then the stock frame.
            held = register(api, "catfeed-buyer@example.com")[0]
            r = httpx.post(
                f"{api.url}/api/orders",
                json={"eventoId": eid, "tickets": [{"categoriaId": cid, "cantidad": 4}]},
                headers=bearer(held),
            )
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            await viewers.next_frames("ticket:stock-update")
            r = httpx.put(f"{base}/{cid}", json={"cantidadTotal": 15}, headers=bearer(org))
            assert r.status_code == 200, r.text
            vip |= {"cantidadTotal": 15, "disponible": 11}
            assert category_of(api, eid, cid) == vip
            told.append(dict(vip))
            resized = [
                ("event:update", {"eventoId": eid, "cambios": {"categoria": vip}}),
                ("ticket:stock-update", {"eventoId": eid, "categoriaId": cid, "nuevoStock": 11}),
            ]
            got_ws, got_sio = await viewers.next_frames("ticket:stock-update")
            assert shapes(got_ws) == resized
            assert shapes(got_sio) == resized

            # Removed (once nothing of it is held): stock 0, then the id that went.
            r = httpx.put(f"{api.url}/api/orders/{order_id}/cancel", headers=bearer(held))
            assert r.status_code == 200, r.text
            await viewers.next_frames("ticket:stock-update")
            r = httpx.delete(f"{base}/{cid}", headers=bearer(org))
            assert r.status_code == 204, r.text
            assert category_of(api, eid, cid) is None
            removed = [
                ("ticket:stock-update", {"eventoId": eid, "categoriaId": cid, "nuevoStock": 0}),
                ("event:update", {"eventoId": eid, "cambios": {"categoriaEliminada": cid}}),
            ]
            got_ws, got_sio = await viewers.next_frames("event:update")
            assert shapes(got_ws) == removed
            assert shapes(got_sio) == removed

        # A viewer that was away resumes with `since` and is replayed every change, in order.
        async with connect(ws_url(api)) as late:
            replay = await joined(late, eid, since=cursor)
            assert replay[-1]["event"] == "joined" and replay[-1]["data"]["snapshot"] is False
            updates = [f for f in replay if f["event"] == "event:update"]
            assert [u["data"]["cambios"] for u in updates] == [
                *({"categoria": c} for c in told),
                {"categoriaEliminada": cid},
            ]
            ids = [key(f) for f in replay if "id" in f and f["event"] != "joined"]
            assert ids == sorted(ids)
    finally:
        await sio.close()
