"""Socket.IO at /socket.io/ through python-socketio's AsyncClient (and raw Engine.IO frames
for what a well-behaved client never sends) against real server processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import socketio
import websockets

from engine.redis_server import free_port
from tests.integration.conftest import ApiServer, create_event, make_world, register

pytestmark = pytest.mark.asyncio

Frame = dict[str, Any]
TRANSPORTS = ["websocket", "polling"]


class Probe:
    """A python-socketio client recording every event as ``{"event", "data", "id"}``."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.frames: asyncio.Queue[Frame] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.sio.on("*", self._on_any)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event: str, *args: Any) -> None:
        frame: Frame = {"event": event, "data": args[0] if args else None}
        if len(args) > 1:
            frame["id"] = args[1]
        await self.frames.put(frame)

    async def _on_disconnect(self, *_: Any) -> None:
        self.disconnected.set()

    async def connect(
        self, url: str, transport: str, token: str | None = None, query_token: bool = False
    ) -> Probe:
        auth = {"token": token} if token and not query_token else None
        target = f"{url}?token={token}" if token and query_token else url
        await self.sio.connect(target, transports=[transport], auth=auth, wait_timeout=5)
        return self

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    async def until(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> list[Frame]:
        """Frames received until (and including) the first matching one."""
        got: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                got.append(await self.frames.get())
                if predicate(got[-1]):
                    return got

    async def drain(self, quiet: float = 0.5) -> list[Frame]:
        got: list[Frame] = []
        try:
            while True:
                got.append(await asyncio.wait_for(self.frames.get(), quiet))
        except TimeoutError:
            return got

    async def joined(self, event_id: str, since: str | None = None) -> list[Frame]:
        await self.emit("join:event", {"eventId": event_id, **({"since": since} if since else {})})
        return await self.until(lambda f: f["event"] in ("joined", "error"))

    async def error(self) -> dict[str, Any]:
        frame = (await self.until(lambda f: f["event"] == "error"))[-1]
        data: dict[str, Any] = frame["data"]
        return data

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def probe(
    api: ApiServer, transport: str, token: str | None = None, query_token: bool = False
) -> Probe:
    return await Probe().connect(api.url, transport, token, query_token)


def hold(api: ApiServer, token: str, event: dict[str, Any], qty: int, cat: int = 0) -> dict:
    r = httpx.post(
        f"{api.url}/api/orders",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][cat]["id"], "cantidad": qty}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def ws_counts(api: ApiServer) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{api.url}/health/ready").json()["checks"]["ws"]
    return counts


async def back_to(api: ApiServer, baseline: dict[str, int], timeout: float) -> dict[str, int]:
    """Poll the hub's counts until clients, rooms and queued frames are at ``baseline``
    and tasks within 2 of it; the last counts either way."""
    keys = ("clients", "eventRooms", "userRooms", "queuedFrames")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = ws_counts(api)
        settled = all(now[k] == baseline[k] for k in keys)
        if (settled and now["tasks"] <= baseline["tasks"] + 2) or loop.time() > deadline:
            return now
        await asyncio.sleep(0.2)


class RawEngineIO:
    """Engine.IO 4 over a plain WebSocket: for packets no Socket.IO client would send."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, api: ApiServer, auth: dict[str, Any] | None = None, **kw: Any) -> Any:
        url = api.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        # No keepalive pings of the client's own: Engine.IO's are answered in event().
        ws = await websockets.connect(url, ping_interval=None, **kw)
        opened = await asyncio.wait_for(ws.recv(), 5)
        assert opened.startswith("0{"), opened
        await ws.send("40" + (json.dumps(auth) if auth else ""))
        connected = await asyncio.wait_for(ws.recv(), 5)
        assert connected.startswith("40{"), connected
        return cls(ws)

    async def emit(self, *args: Any) -> None:
        await self.ws.send("42" + json.dumps(list(args)))

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection (Engine.IO CLOSE packet or the socket
        ending) before sending any Socket.IO event."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self.ws.recv()
                    if raw == "1":
                        return True
                    if raw.startswith("42"):
                        return False
        except websockets.ConnectionClosed:
            return True

    async def event(self, name: str, timeout: float = 5.0) -> list[Any]:
        """The arguments of the next Socket.IO event ``name`` (answering pings)."""
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.recv()
                if raw == "2":
                    await self.ws.send("3")
                elif raw.startswith("42"):
                    packet = json.loads(raw[2:])
                    if packet[0] == name:
                        return list(packet[1:])


class RawPolling:
    """An Engine.IO long-polling session driven by hand: it polls only when told to."""

    def __init__(self, api: ApiServer, auth: dict[str, Any] | None = None) -> None:
        self.http = httpx.Client(timeout=10)
        base = f"{api.url}/socket.io/?EIO=4&transport=polling"
        opened = self.http.get(base).text
        assert opened.startswith("0{"), opened
        self.url = f"{base}&sid={json.loads(opened[1:])['sid']}"
        self.post("40" + (json.dumps(auth) if auth else ""))
        assert self.http.get(self.url).text.startswith("40{")

    def post(self, *packets: str) -> None:
        assert self.http.post(self.url, content="\x1e".join(packets)).text == "OK"

    def poll(self) -> list[list[Any]]:
        """The Socket.IO events of one long-poll, as ``[name, *args]``."""
        packets = self.http.get(self.url).text.split("\x1e")
        return [json.loads(p[2:]) for p in packets if p.startswith("42")]

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def world(api: ApiServer) -> dict[str, Any]:
    return make_world(api, "sio", [("A", 10.0, 2000), ("B", 5.0, 100)], [("A", 10.0, 2000)])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_updates_reach_only_the_event_room(
    api: ApiServer, world: dict[str, Any], transport: str
) -> None:
    e1, e2 = world["e1"], world["e2"]
    a, b = await probe(api, transport), await probe(api, transport)
    try:
        first = await a.joined(e1["id"])
        snapshot = [f for f in first if f["event"] == "ticket:stock-update"]
        assert {f["data"]["categoriaId"] for f in snapshot} == {c["id"] for c in e1["categorias"]}
        # The seed's payload, untouched; the stream id is the second argument.
        assert all(set(f["data"]) == {"eventoId", "categoriaId", "nuevoStock"} for f in snapshot)
        assert all(f["id"] == first[-1]["data"]["id"] for f in snapshot)
        await b.joined(e2["id"])
        await b.drain(0.3)
        category = e1["categorias"][0]["id"]
        before = next(
            f["data"]["nuevoStock"] for f in snapshot if f["data"]["categoriaId"] == category
        )
        hold(api, world["buyer"], e1, 3)
        got = await a.until(
            lambda f: (
                f["event"] == "ticket:stock-update"
                and f["data"]["categoriaId"] == category
                and f["data"]["nuevoStock"] == before - 3
            )
        )
        assert got[-1]["data"]["eventoId"] == e1["id"]
        assert isinstance(got[-1]["id"], str)
        assert not [f for f in await b.drain(0.5) if (f["data"] or {}).get("eventoId") == e1["id"]]
        # Status changes are private: never in an event room.
        assert not [f for f in await a.drain(0.3) if f["event"] == "order:status-change"]
        # Left rooms hear nothing more.
        await a.emit("leave:event", {"eventId": e1["id"]})
        await a.until(lambda f: f["event"] == "left")
        hold(api, world["buyer"], e1, 1)
        assert not [f for f in await a.drain(0.6) if f["event"] == "ticket:stock-update"]
    finally:
        await a.close()
        await b.close()


async def test_join_user_rules_and_private_status_changes(
    api: ApiServer, world: dict[str, Any]
) -> None:
    me, other_id = world["buyer_user"]["id"], world["other_user"]["id"]
    anon = await probe(api, "websocket")
    bad = await probe(api, "polling", token="not-a-token")
    try:
        await anon.emit("join:user", {"userId": me})
        assert (await anon.error())["code"] == "unauthorized"
        # A bad handshake token is reported, and the connection stays usable anonymously.
        assert (await bad.error())["code"] == "unauthorized"
        await bad.emit("join:user", {"userId": me})
        assert (await bad.error())["code"] == "unauthorized"
        assert [f for f in await bad.joined(world["e2"]["id"]) if f["event"] == "joined"]
    finally:
        await anon.close()
        await bad.close()
    # auth: { token } on one transport, ?token= on the other.
    mine = await probe(api, "websocket", token=world["buyer"])
    theirs = await probe(api, "polling", token=world["other"], query_token=True)
    try:
        await mine.emit("join:user", {"userId": other_id})
        assert (await mine.error())["code"] == "forbidden"
        await mine.emit("join:user", {"userId": me})
        await mine.until(lambda f: f["event"] == "joined")
        await theirs.emit("join:user", {"userId": other_id})
        await theirs.until(lambda f: f["event"] == "joined")
        await asyncio.sleep(1.5)  # the hub refreshes the events its user rooms buy in
        order = hold(api, world["buyer"], world["e2"], 1)
        got = await mine.until(lambda f: f["event"] == "order:status-change")
        assert got[-1]["data"]["orderId"] == order["id"]
        assert got[-1]["data"]["nuevoEstado"] == "RESERVED"
        assert set(got[-1]["data"]) == {"orderId", "nuevoEstado", "expiraEn"}
        r = httpx.put(
            f"{api.url}/api/orders/{order['id']}/confirm",
            json={"metodoPago": "card", "transactionId": "sio-t1"},
            headers={"Authorization": f"Bearer {world['buyer']}"},
        )
        assert r.status_code == 200, r.text
        got = await mine.until(lambda f: f["event"] == "order:status-change")
        assert got[-1]["data"]["nuevoEstado"] == "CONFIRMED"
        assert not [f for f in await theirs.drain(0.5) if f["event"] == "order:status-change"]
    finally:
        await mine.close()
        await theirs.close()
    admin = await probe(api, "websocket", token=api.tokens["ADMIN"])
    try:
        await admin.emit("join:user", {"userId": me})
        ack = await admin.until(lambda f: f["event"] in ("joined", "error"))
        assert ack[-1] == {"event": "joined", "data": {"room": "user", "userId": me}}
    finally:
        await admin.close()


async def test_replay_since_id_converges_to_redis(api: ApiServer, world: dict[str, Any]) -> None:
    ev = create_event(api, world["org"], [("X", 1.0, 500), ("Y", 1.0, 500)])
    stock: dict[str, int] = {}
    c = await probe(api, "websocket")
    try:
        frames = await c.joined(ev["id"])
    finally:
        await c.close()
    for f in frames:
        if f["event"] == "ticket:stock-update":
            stock[f["data"]["categoriaId"]] = f["data"]["nuevoStock"]
    last_id = frames[-1]["data"]["id"]
    tokens = [register(api, f"sio-replay-{i}@example.com")[0] for i in range(4)]
    for i in range(30):
        hold(api, tokens[i % 4], ev, 1 + i % 3, cat=i % 2)
    c = await probe(api, "polling")
    try:
        frames = await c.joined(ev["id"], since=last_id)
    finally:
        await c.close()
    ack = frames[-1]
    assert ack["event"] == "joined" and ack["data"]["snapshot"] is False
    assert ack["data"]["replayed"] > 0
    ids = [f["id"] for f in frames if "id" in f]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    for f in frames:
        if f["event"] == "ticket:stock-update":
            stock[f["data"]["categoriaId"]] = f["data"]["nuevoStock"]
    live = httpx.get(f"{api.url}/api/events/{ev['id']}").json()
    assert stock == {c["id"]: c["disponible"] for c in live["categorias"]}


async def test_bad_input_gets_error_events_never_a_server_error(
    api: ApiServer, world: dict[str, Any]
) -> None:
    c = await probe(api, "websocket")
    try:
        for event, data, code in (
            ("explode", {"eventId": "x"}, "unknown_event"),
            ("message", {"a": 1}, "unknown_event"),
            ("join:event", None, "bad_message"),
            ("join:event", [1, 2], "bad_message"),
            ("join:event", "e1", "bad_message"),
            ("join:event", {"eventId": "../x"}, "bad_message"),
            ("join:event", {"eventId": 7}, "bad_message"),
            ("join:event", {"eventId": "nope"}, "event_not_found"),
            ("join:event", {"eventId": world["e1"]["id"], "since": "x"}, "bad_message"),
            ("join:user", {}, "bad_message"),
            ("auth", {"token": 5}, "unauthorized"),
        ):
            await c.emit(event, data)
            assert (await c.error())["code"] == code, (event, data)
        assert c.sio.connected
    finally:
        await c.close()
    # What no Socket.IO client sends: reserved or non-string event names get error events;
    # packets that do not parse (or are too large) close the connection, as on Node.
    raw = await RawEngineIO.open(api)
    try:
        await raw.emit("connect", {"x": 1})
        assert (await raw.event("error"))[0]["code"] == "unknown_event"
        await raw.emit("disconnect")
        assert (await raw.event("error"))[0]["code"] == "unknown_event"
        await raw.emit(17, {"eventId": world["e1"]["id"]})
        assert (await raw.event("error"))[0]["code"] == "bad_message"
        await raw.emit("join:event", {"eventId": world["e1"]["id"]})
        assert (await raw.event("joined"))[0]["eventId"] == world["e1"]["id"]
    finally:
        await raw.ws.close()
    for garbage in ("42[]", "42{", "42", "4", "49", '42["join:event"', "4" + "x" * 70_000):
        raw = await RawEngineIO.open(api)
        try:
            await raw.ws.send(garbage)
            assert await raw.closed(), garbage
        finally:
            await raw.ws.close()
    assert httpx.get(f"{api.url}/health/ready").status_code == 200
    assert api.log_path is not None
    log = api.log_path.read_text()
    for marker in ("Traceback", "Exception in ASGI", "handler error"):
        assert marker not in log, log[-3000:]


async def test_a_flood_of_joins_is_cut_off_and_leaves_nothing(
    api: ApiServer, world: dict[str, Any]
) -> None:
    warm = await probe(api, "websocket")
    await warm.close()
    await asyncio.sleep(0.5)
    baseline = ws_counts(api)
    c = await probe(api, "websocket")
    try:
        for i in range(300):
            try:
                await c.emit("join:event", {"eventId": f"flood{i}"})
            except socketio.exceptions.BadNamespaceError:
                break  # disconnected by the server
        errors = [f["data"]["code"] for f in await c.drain(1.0) if f["event"] == "error"]
        assert "rate_limited" in errors or "too_many_rooms" in errors, errors
        await asyncio.wait_for(c.disconnected.wait(), 5)
    finally:
        await c.close()
    now = await back_to(api, baseline, timeout=10)
    assert (now["clients"], now["eventRooms"], now["userRooms"]) == (
        baseline["clients"],
        baseline["eventRooms"],
        baseline["userRooms"],
    )


async def test_disconnects_of_every_kind_return_counts_to_baseline(
    api: ApiServer, world: dict[str, Any]
) -> None:
    warm = await probe(api, "polling")
    await warm.close()
    await asyncio.sleep(1.0)
    baseline = ws_counts(api)
    # Two users, 16 sockets each: within WS_MAX_PER_USER (20).
    users = [
        (world["buyer"], world["buyer_user"]["id"]),
        (world["other"], world["other_user"]["id"]),
    ]
    probes = [
        await probe(api, TRANSPORTS[i % 2], token=users[i // 8][0], query_token=i % 4 < 2)
        for i in range(16)
    ]
    raws = [await RawEngineIO.open(api, auth={"token": users[i // 8][0]}) for i in range(16)]
    for i, p in enumerate(probes):
        await p.emit("join:event", {"eventId": world["e1"]["id"] if i % 2 else world["e2"]["id"]})
        await p.emit("join:user", {"userId": users[i // 8][1]})
    for i, r in enumerate(raws):
        await r.emit("join:event", {"eventId": world["e1"]["id"] if i % 2 else world["e2"]["id"]})
        await r.emit("join:user", {"userId": users[i // 8][1]})
        await r.event("joined")
    await asyncio.sleep(1.0)
    during = ws_counts(api)
    assert during["clients"] == baseline["clients"] + 32
    assert during["userRooms"] >= 1
    for p in probes:
        await p.close()
    for r in raws:
        r.ws.transport.abort()  # no close handshake, no Engine.IO close packet
    # Rooms and clients are freed at once; Engine.IO's own ping task of a closed
    # connection ends within one ping interval (25 s).
    now = await back_to(api, baseline, timeout=40)
    assert (now["clients"], now["eventRooms"], now["userRooms"], now["queuedFrames"]) == (
        baseline["clients"],
        baseline["eventRooms"],
        baseline["userRooms"],
        baseline["queuedFrames"],
    )
    assert now["tasks"] <= baseline["tasks"] + 2, (baseline, now)


async def test_a_client_that_never_reads_does_not_slow_others(
    api: ApiServer, world: dict[str, Any]
) -> None:
    ev = create_event(api, world["org"], [("S", 1.0, 5000)])
    token = register(api, "sio-slow@example.com")[0]
    # A polling client that stops polling: nothing reaches it until it asks, so the server
    # must keep its backlog, and keep it small.
    slow = RawPolling(api)
    fast = await probe(api, "websocket")
    try:
        slow.post("42" + json.dumps(["join:event", {"eventId": ev["id"]}]))
        await fast.joined(ev["id"])
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}) as h:
            for _ in range(100):
                body = {
                    "eventoId": ev["id"],
                    "tickets": [{"categoriaId": ev["categorias"][0]["id"], "cantidad": 1}],
                }
                assert h.post("/api/orders", json=body).status_code == 201
        got = await fast.until(
            lambda f: f["event"] == "ticket:stock-update" and f["data"]["nuevoStock"] == 4900,
            timeout=15,
        )
        assert got[-1]["data"]["nuevoStock"] == 4900
        # 100 updates, and the slow connection's backlog is one conflated frame in the
        # hub's outbox (Engine.IO holds only the batch handed over before it stopped).
        queued = ws_counts(api)["queuedFrames"]
        assert 1 <= queued <= 2, queued
        # When it polls again it gets that batch, then the latest stock, not 100 frames.
        first, second = slow.poll(), slow.poll()
        assert [e for e, *_ in first] == ["ticket:stock-update", "joined"], first
        assert first[0][1]["nuevoStock"] == 5000
        assert [(e, d["nuevoStock"]) for e, d, *_ in second] == [("ticket:stock-update", 4900)]
    finally:
        await fast.close()
        slow.close()


async def test_a_stalled_client_past_the_outbox_bound_is_dropped(
    api: ApiServer, world: dict[str, Any]
) -> None:
    ev = create_event(api, world["org"], [("Q", 1.0, 5000)])
    token, user = register(api, "sio-stalled@example.com")
    await asyncio.sleep(0.5)
    baseline = ws_counts(api)
    # Status changes are not conflated: past the outbox bound (2,000 frames) the
    # connection of a client that stopped reading is closed and everything it held freed.
    slow = RawPolling(api, auth={"token": token})
    try:
        slow.post("42" + json.dumps(["join:user", {"userId": user["id"]}]))
        await asyncio.sleep(1.5)  # the hub refreshes the events its user rooms buy in
        assert ws_counts(api)["clients"] == baseline["clients"] + 1
        body = {
            "eventoId": ev["id"],
            "tickets": [{"categoriaId": ev["categorias"][0]["id"], "cantidad": 1}],
        }
        limit = asyncio.Semaphore(8)

        async def one(h: httpx.AsyncClient) -> int:
            async with limit:
                return (await h.post("/api/orders", json=body)).status_code

        async with httpx.AsyncClient(
            base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as h:
            codes = await asyncio.gather(*(one(h) for _ in range(2100)))
        assert codes.count(201) == 2100
        now = await back_to(api, baseline, timeout=10)
        assert (now["clients"], now["userRooms"], now["queuedFrames"]) == (
            baseline["clients"],
            baseline["userRooms"],
            baseline["queuedFrames"],
        )
        # The client learns it on its next poll: Engine.IO's close, or an unknown session.
        r = slow.http.get(slow.url)
        assert r.status_code == 400 or r.text.split("\x1e")[-1] == "1", r.text[-200:]
    finally:
        slow.close()


async def test_two_server_processes_deliver_to_clients_on_either(
    api_factory: Callable[..., ApiServer], api: ApiServer, world: dict[str, Any]
) -> None:
    second = api_factory(redis=api.redis, DATA_DIR=str(api.data_dir))  # one shared store
    ev = world["e2"]
    on_first = await probe(api, "polling")
    on_second = await probe(second, "websocket")
    try:
        await on_first.joined(ev["id"])
        await on_second.joined(ev["id"])
        await on_first.drain(0.3)
        await on_second.drain(0.1)
        hold(second, world["buyer"], ev, 2)  # through the second process
        for c in (on_first, on_second):
            got = await c.until(
                lambda f: f["event"] == "ticket:stock-update" and f["data"]["eventoId"] == ev["id"]
            )
            assert got[-1]["data"]["categoriaId"] == ev["categorias"][0]["id"]
    finally:
        await on_first.close()
        await on_second.close()


async def test_ws_port_serves_both_realtime_endpoints_from_the_same_hub(
    api_factory: Callable[..., ApiServer], api: ApiServer, world: dict[str, Any]
) -> None:
    ws_port = free_port()
    server = api_factory(redis=api.redis, DATA_DIR=str(api.data_dir), WS_PORT=str(ws_port))
    realtime = ApiServer(f"http://127.0.0.1:{ws_port}", api.redis, server.data_dir, server.env)
    ev = world["e1"]
    sio = await probe(realtime, "polling")
    plain = await websockets.connect(f"ws://127.0.0.1:{ws_port}/ws", ping_interval=None)
    try:
        await sio.joined(ev["id"])
        await plain.send(json.dumps({"event": "join:event", "data": {"eventId": ev["id"]}}))
        counts = ws_counts(server)  # asked on PORT: both clients are in its one hub
        assert counts["clients"] == 2 and counts["eventRooms"] == 1
        await sio.drain(0.3)
        hold(server, world["buyer"], ev, 1)
        got = await sio.until(lambda f: f["event"] == "ticket:stock-update")
        assert got[-1]["data"]["eventoId"] == ev["id"]
        async with asyncio.timeout(5):
            while True:
                msg = json.loads(await plain.recv())
                if msg["event"] == "ticket:stock-update" and msg["id"] == got[-1]["id"]:
                    break
    finally:
        await sio.close()
        await plain.close()
