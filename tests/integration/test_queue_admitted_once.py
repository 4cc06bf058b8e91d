"""Each buyer's socket is told each admission once (SPEC 10.1 ``queue:admitted``), over
``/ws`` and Socket.IO, against a real server process and real Redis.

An admission reaches a socket by two paths: the event's feed (the admit script's
``queue:admitted`` entry, fanned out to the user's room and to the sockets that sent
``join:queue``) and the queue watch's once-a-second read of the place (which also says it
when a feed entry was missed, e.g. to a socket that joins after it). These tests force the
interleavings in which both paths, or a replay of the feed, used to tell the same socket
again (docs/queue.md, "Each admission once per socket"):

* a second socket of the buyer joining the queue (a second tab, a reconnect);
* the queue selling out while an admitted buyer has not held yet;
* the read seeing the admission before the feed entry is delivered (forced by writing the
  admission's two halves, the place and the feed entry, one after the other);
* a socket that left the queue and held, whose user room then replays the event's feed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import socketio
import websockets

from engine import keys
from tests.integration.conftest import ApiServer, bearer, create_event, register, unique_email

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

Frame = dict[str, Any]
ADMITTED = "queue:admitted"


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@pytest.fixture(scope="module")
def qapi(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(ORDER_RESERVATION_TIMEOUT_MINUTES="10")


class Socket:
    """A buyer's socket over ``/ws`` or Socket.IO, recording every frame it gets."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._ws: Any = None
        self._sio: socketio.AsyncClient | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def ws(cls, api: ApiServer, token: str) -> Socket:
        s = cls()
        url = api.url.replace("http://", "ws://") + f"/ws?token={token}"
        s._ws = await websockets.connect(url, ping_interval=None)
        s._reader = asyncio.ensure_future(s._read())
        return s

    @classmethod
    async def sio(cls, api: ApiServer, token: str, transport: str = "websocket") -> Socket:
        s = cls()
        s._sio = socketio.AsyncClient(reconnection=False)

        async def on_any(event: str, *args: Any) -> None:
            s.frames.append({"event": event, "data": args[0] if args else None})

        s._sio.on("*", on_any)
        await s._sio.connect(api.url, transports=[transport], auth={"token": token})
        return s

    async def _read(self) -> None:
        try:
            while True:
                self.frames.append(json.loads(await self._ws.recv()))
        except websockets.ConnectionClosed:
            return

    async def send(self, event: str, **data: Any) -> None:
        if self._sio is not None:
            await self._sio.emit(event, data)
        else:
            await self._ws.send(json.dumps({"event": event, "data": data}))

    def named(self, name: str) -> list[Frame]:
        return [f for f in self.frames if f["event"] == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 10.0) -> list[Frame]:
        deadline = time.monotonic() + timeout
        while len(self.named(name)) < count:
            errors = self.named("error")
            assert not errors, errors
            assert time.monotonic() < deadline, (name, self.frames)
            await asyncio.sleep(0.02)
        return self.named(name)

    async def join_queue(self, event_id: str) -> None:
        await self.send("join:queue", eventId=event_id)
        await self.wait("joined")

    async def close(self) -> None:
        if self._sio is not None:
            await self._sio.disconnect()
        else:
            await self._ws.close()
            if self._reader is not None:
                await self._reader


def _queue(
    api: ApiServer, stock: int, per: int, buyers: int
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """An event of ``stock`` tickets with a queue opening in 2 s and ``buyers`` in its
    pre-queue: the event and the buyers' (JWT, user id)."""
    org, _ = register(api, unique_email("aoo"), role="ORGANIZADOR")
    event = create_event(api, org, [("A", 10.0, stock)])
    r = httpx.put(
        f"{api.url}/api/events/{event['id']}/queue",
        json={"abreEn": _at(2), "entradasPorAdmision": per},
        headers=bearer(org),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    out = []
    for _ in range(buyers):
        token, user = register(api, unique_email("aob"))
        r = httpx.post(f"{api.url}/api/events/{event['id']}/queue/join", headers=bearer(token))
        assert r.status_code == 201, r.text
        out.append((token, user["id"]))
    return event, out


def _hold(api: ApiServer, token: str, event: dict[str, Any], n: int, admission: str) -> str:
    r = httpx.post(
        f"{api.url}/api/orders",
        json={
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": n}],
        },
        headers={**bearer(token), "Admission-Token": admission},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    order_id: str = r.json()["id"]
    return order_id


def _me(api: ApiServer, token: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/events/{event_id}/queue/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _tokens(frames: list[Frame]) -> list[str]:
    return [f["data"]["admisionToken"] for f in frames]


QUIET_S = 2.5  # two of the queue watch's reads (one a second) and any feed entry after them


async def test_a_second_socket_of_the_buyer_does_not_repeat_the_admission_to_the_first(
    qapi: ApiServer,
) -> None:
    """A join says the place to the joining socket only: the buyer's socket that was told
    already is not told again when a second one (Socket.IO here, a second tab or a
    reconnect) joins, and the second is told once."""
    event, [(token, _)] = _queue(qapi, stock=1, per=1, buyers=1)
    eid = event["id"]
    first = await Socket.ws(qapi, token)
    second: Socket | None = None
    try:
        await first.join_queue(eid)
        told = _tokens(await first.wait(ADMITTED, timeout=20))
        second = await Socket.sio(qapi, token)
        await second.join_queue(eid)
        assert _tokens(await second.wait(ADMITTED)) == told
        await asyncio.sleep(QUIET_S)
        assert _tokens(first.named(ADMITTED)) == told, first.frames
        assert _tokens(second.named(ADMITTED)) == told, second.frames
        assert _me(qapi, token, eid)["admisionToken"] == told[0]
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_a_sell_out_does_not_repeat_an_admission_not_used_yet(qapi: ApiServer) -> None:
    """Two buyers admitted for 3 tickets (2 per admission); one holds all 3 and pays: the
    queue sells out. The other, admitted and not holding, is told the sell-out once and
    never its admission again (the read still finds it ADMITIDO)."""
    event, buyers = _queue(qapi, stock=3, per=2, buyers=2)
    eid = event["id"]
    sockets = [await Socket.sio(qapi, token) for token, _ in buyers]
    try:
        for s in sockets:
            await s.join_queue(eid)
        told = [_tokens(await s.wait(ADMITTED, timeout=20)) for s in sockets]
        order_id = _hold(qapi, buyers[0][0], event, 3, told[0][0])
        r = httpx.put(
            f"{qapi.url}/api/orders/{order_id}/confirm",
            json={"metodoPago": "card", "transactionId": "tx-" + order_id},
            headers=bearer(buyers[0][0]),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        other = sockets[1]
        await other.wait("queue:sold-out", timeout=15)
        await asyncio.sleep(QUIET_S)
        assert _me(qapi, buyers[1][0], eid)["estado"] == "ADMITIDO"
        assert _tokens(other.named(ADMITTED)) == told[1], other.frames
        assert len(other.named("queue:sold-out")) == 1, other.frames
        assert _tokens(sockets[0].named(ADMITTED)) == told[0], sockets[0].frames
    finally:
        for s in sockets:
            await s.close()


# One admission's writes for one buyer, as lua/admit_queue-8.lua makes them, less the
# feed entry (written separately, after): the place, line, heartbeats, token, counters.
ADMIT_PLACE = """
local q, waiting, line, hbs, adms, recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local user, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local place = cjson.decode(redis.call('HGET', q, 'u:' .. user))
place.e, place.t, place.x = 'ADMITIDO', token, now + ttl
redis.call('HSET', q, 'u:' .. user, cjson.encode(place))
redis.call('ZREM', line, user)
redis.call('ZREM', hbs, user)
redis.call('HSET', q, 't:' .. token, user)
redis.call('ZADD', adms, place.x, token)
redis.call('ZADD', recent, now, token)
redis.call('HINCRBY', q, 'adm', 1)
redis.call('DECRBY', waiting, 1)
return place.x
"""


async def test_an_admission_read_before_its_feed_entry_is_delivered_is_told_once(
    qapi: ApiServer,
) -> None:
    """The interleaving of a read racing the feed: the queue watch reads the place
    ADMITIDO (and tells the buyer) before the tailer delivers the admission's feed
    entry. Forced by writing the admission's two halves apart: the place first (the
    read tells it), then the feed entry. A socket following the queue only (/ws), one
    following the queue and the user's room (Socket.IO, as the web page does) and one in
    the user's room only (the feed entry is delivered) are each told once."""
    event, buyers = _queue(qapi, stock=1, per=1, buyers=2)
    eid = event["id"]
    watching = [await Socket.ws(qapi, token) for token, _ in buyers]
    extra: list[Socket] = []
    try:
        for s in watching:
            await s.join_queue(eid)
        # 1 ticket, 1 per admission: one buyer is admitted and holds it (nothing left to
        # admit anyone else: the admit script stays out of the way).
        deadline = time.monotonic() + 20
        while not any(s.named(ADMITTED) for s in watching):
            assert time.monotonic() < deadline, [s.frames for s in watching]
            await asyncio.sleep(0.05)
        winner = next(i for i, s in enumerate(watching) if s.named(ADMITTED))
        _hold(qapi, buyers[winner][0], event, 1, _tokens(watching[winner].named(ADMITTED))[0])
        token, user_id = buyers[1 - winner]
        queue_only = watching[1 - winner]
        both = await Socket.sio(qapi, token)
        extra.append(both)
        await both.send("join:user", userId=user_id)
        await both.wait("joined")
        await both.join_queue(eid)
        room_only = await Socket.ws(qapi, token)
        extra.append(room_only)
        await room_only.send("join:user", userId=user_id)
        await room_only.wait("joined")
        assert not queue_only.named(ADMITTED) and not both.named(ADMITTED)

        k = keys.queue_keys(eid)
        admission = secrets.token_urlsafe(18)
        r = redis.Redis.from_url(qapi.redis.url)
        try:
            expires = int(
                r.eval(
                    ADMIT_PLACE,
                    6,
                    k.queue,
                    k.waiting,
                    k.line,
                    k.heartbeats,
                    k.admissions,
                    k.recent,
                    user_id,
                    admission,
                    600_000,
                )
            )
            # The read tells the two queue sockets (the feed has said nothing yet).
            for s in (queue_only, both):
                assert _tokens(await s.wait(ADMITTED, timeout=5)) == [admission]
            assert not room_only.named(ADMITTED)
            data = {"eventoId": eid, "admisionToken": admission, "admisionExpiraEn": _iso(expires)}
            r.xadd(
                keys.feed(eid),
                {"event": ADMITTED, "data": json.dumps(data), "user": user_id},
            )
        finally:
            r.close()
        assert _tokens(await room_only.wait(ADMITTED)) == [admission]
        await asyncio.sleep(QUIET_S)
        assert _me(qapi, token, eid)["admisionToken"] == admission
        for s in (queue_only, both, room_only):
            assert _tokens(s.named(ADMITTED)) == [admission], s.frames
    finally:
        for s in watching + extra:
            await s.close()


async def test_a_user_room_replaying_the_feed_after_a_hold_does_not_repeat_the_admission(
    qapi: ApiServer,
) -> None:
    """A socket in the user's room and the queue is told its admission, leaves the
    queue (the event's feed is no longer tailed) and holds at once. The user room then
    follows the event from just before the order (so its ``RESERVED`` is not missed),
    which replays the admission's entry: it is not told again."""
    event, [(token, user_id)] = _queue(qapi, stock=1, per=1, buyers=1)
    eid = event["id"]
    s = await Socket.ws(qapi, token)
    try:
        await s.send("join:user", userId=user_id)
        await s.wait("joined")
        await s.join_queue(eid)
        told = _tokens(await s.wait(ADMITTED, timeout=20))
        await s.send("leave:queue", eventId=eid)
        await s.wait("left")
        order_id = _hold(qapi, token, event, 1, told[0])
        changes = await s.wait("order:status-change", timeout=10)
        assert changes[0]["data"]["orderId"] == order_id, changes
        await asyncio.sleep(1.0)
        assert _tokens(s.named(ADMITTED)) == told, s.frames
    finally:
        await s.close()
