"""The /ws feed through real WebSocket clients against real server processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.conftest import ApiServer, create_event, make_world, register

pytestmark = pytest.mark.asyncio


def connect(url: str, **kw: Any) -> Any:
    """A client without keepalive pings of its own: a loaded test machine must not turn a
    late pong into a closed socket (the server's own pings are what the tests rely on)."""
    return websockets.connect(url, ping_interval=None, **kw)


def ws_url(api: ApiServer, token: str | None = None) -> str:
    base = api.url.replace("http://", "ws://") + "/ws"
    return f"{base}?token={token}" if token else base


async def send(ws: Any, event: str, **data: Any) -> None:
    await ws.send(json.dumps({"event": event, "data": data}))


async def until(
    ws: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """Frames received until (and including) the first matching one."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            got.append(msg)
            if predicate(msg):
                return got


async def drain(ws: Any, quiet: float = 0.5) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    try:
        while True:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
    except TimeoutError:
        return got


async def joined(ws: Any, event_id: str, since: str | None = None) -> list[dict[str, Any]]:
    extra = {"since": since} if since else {}
    await send(ws, "join:event", eventId=event_id, **extra)
    return await until(ws, lambda m: m["event"] in ("joined", "error"))


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


@pytest.fixture(scope="module")
def world(api: ApiServer) -> dict[str, Any]:
    return make_world(api, "ws", [("A", 10.0, 20), ("B", 5.0, 100)], [("A", 10.0, 50)])


async def test_join_gives_a_snapshot_then_live_updates_to_that_room_only(
    api: ApiServer, world: dict[str, Any]
) -> None:
    e1, e2 = world["e1"], world["e2"]
    async with connect(ws_url(api)) as a, connect(ws_url(api)) as b:
        first = await joined(a, e1["id"])
        snap = [m for m in first if m["event"] == "ticket:stock-update"]
        assert {m["data"]["categoriaId"] for m in snap} == {c["id"] for c in e1["categorias"]}
        assert all("id" in m for m in snap)
        await joined(b, e2["id"])
        await drain(b, 0.3)
        hold(api, world["buyer"], e1, 3)
        frames = await until(
            a,
            lambda m: (
                m["event"] == "ticket:stock-update"
                and m["data"]["categoriaId"] == e1["categorias"][0]["id"]
                and m["data"]["nuevoStock"] < 20
            ),
        )
        assert frames[-1]["data"]["eventoId"] == e1["id"]
        assert not [m for m in await drain(b, 0.5) if m["data"].get("eventoId") == e1["id"]]
        # Status changes are private: never in an event room.
        assert not [m for m in await drain(a, 0.3) if m["event"] == "order:status-change"]


async def test_almost_sold_out_and_event_update(api: ApiServer, world: dict[str, Any]) -> None:
    e1 = world["e1"]
    async with connect(ws_url(api)) as a:
        await joined(a, e1["id"])
        stock = httpx.get(f"{api.url}/api/events/{e1['id']}").json()["categorias"][0]["disponible"]
        remaining = stock - 2  # 10% of 20 is 2: holding down to 2 crosses the limit
        while remaining > 0:
            hold(api, world["other"], e1, min(9, remaining))
            remaining -= min(9, remaining)
        alerts = await until(a, lambda m: m["event"] == "ticket:almost-sold-out")
        assert alerts[-1]["data"]["stockRestante"] <= 2
        r = httpx.put(
            f"{api.url}/api/events/{e1['id']}",
            json={"nombre": "Renamed"},
            headers={"Authorization": f"Bearer {world['org']}"},
        )
        assert r.status_code == 200, r.text
        update = await until(a, lambda m: m["event"] == "event:update")
        assert update[-1]["data"] == {"eventoId": e1["id"], "cambios": {"nombre": "Renamed"}}


async def test_join_user_rules_and_private_status_changes(
    api: ApiServer, world: dict[str, Any]
) -> None:
    me = world["buyer_user"]["id"]
    async with connect(ws_url(api)) as anon:
        await send(anon, "join:user", userId=me)
        err = await until(anon, lambda m: m["event"] == "error")
        assert err[-1]["data"]["code"] == "unauthorized"
        await send(anon, "auth", token="not-a-token")
        assert (await until(anon, lambda m: m["event"] == "error"))[-1]["data"]["code"] == (
            "unauthorized"
        )
    async with (
        connect(ws_url(api, world["buyer"])) as mine,
        connect(ws_url(api)) as other,
    ):
        await send(mine, "join:user", userId=world["other_user"]["id"])
        assert (await until(mine, lambda m: m["event"] == "error"))[-1]["data"]["code"] == (
            "forbidden"
        )
        await send(mine, "join:user", userId=me)
        await until(mine, lambda m: m["event"] == "joined")
        await send(other, "auth", token=world["other"])
        await until(other, lambda m: m["event"] == "authenticated")
        await send(other, "join:user", userId=world["other_user"]["id"])
        await until(other, lambda m: m["event"] == "joined")
        await asyncio.sleep(1.5)  # the hub refreshes the events its user rooms buy in
        order = hold(api, world["buyer"], world["e2"], 1)
        got = await until(mine, lambda m: m["event"] == "order:status-change")
        assert got[-1]["data"]["orderId"] == order["id"]
        assert got[-1]["data"]["nuevoEstado"] == "RESERVED"
        r = httpx.put(
            f"{api.url}/api/orders/{order['id']}/confirm",
            json={"metodoPago": "card", "transactionId": "ws-t1"},
            headers={"Authorization": f"Bearer {world['buyer']}"},
        )
        assert r.status_code == 200
        got = await until(mine, lambda m: m["event"] == "order:status-change")
        assert got[-1]["data"]["nuevoEstado"] == "CONFIRMED"
        assert not [m for m in await drain(other, 0.5) if m["event"] == "order:status-change"]
    admin = api.tokens["ADMIN"]
    async with connect(ws_url(api, admin)) as adm:
        await send(adm, "join:user", userId=me)
        assert (await until(adm, lambda m: m["event"] in ("joined", "error")))[-1]["event"] == (
            "joined"
        )


async def test_replay_since_id_after_a_disconnect_converges_to_redis(
    api: ApiServer, world: dict[str, Any]
) -> None:
    org = world["org"]
    ev = create_event(api, org, [("X", 1.0, 500), ("Y", 1.0, 500)])
    stock: dict[str, int] = {}
    last_id = None
    async with connect(ws_url(api)) as ws:
        for m in await joined(ws, ev["id"]):
            if m["event"] == "ticket:stock-update":
                stock[m["data"]["categoriaId"]] = m["data"]["nuevoStock"]
            last_id = m.get("id", last_id) if m["event"] != "joined" else m["data"]["id"]
    # Updates while disconnected.
    tokens = [register(api, f"ws-replay-{i}@example.com")[0] for i in range(5)]
    for i in range(40):
        hold(api, tokens[i % 5], ev, 1 + i % 3, cat=i % 2)
    async with connect(ws_url(api)) as ws:
        frames = await joined(ws, ev["id"], since=last_id)
        ack = frames[-1]
        assert ack["event"] == "joined" and ack["data"]["snapshot"] is False
        assert ack["data"]["replayed"] > 0
        ids = [m["id"] for m in frames if "id" in m]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        for m in frames:
            if m["event"] == "ticket:stock-update":
                stock[m["data"]["categoriaId"]] = m["data"]["nuevoStock"]
    live = httpx.get(f"{api.url}/api/events/{ev['id']}").json()
    assert stock == {c["id"]: c["disponible"] for c in live["categorias"]}


async def test_a_client_that_never_reads_does_not_slow_others(
    api: ApiServer, world: dict[str, Any]
) -> None:
    ev = create_event(api, world["org"], [("S", 1.0, 5000)])
    token = register(api, "ws-flood@example.com")[0]
    slow = await connect(ws_url(api), max_queue=1)
    try:
        await send(slow, "join:event", eventId=ev["id"])
        async with connect(ws_url(api)) as fast:
            await joined(fast, ev["id"])
            for _ in range(300):
                hold(api, token, ev, 1)
            got = await until(
                fast,
                lambda m: m["event"] == "ticket:stock-update" and m["data"]["nuevoStock"] == 4700,
                timeout=15,
            )
            assert got[-1]["data"]["nuevoStock"] == 4700
            ready = httpx.get(f"{api.url}/health/ready").json()
            # The slow socket's queue is conflated to one frame per category.
            assert ready["checks"]["ws"]["queuedFrames"] <= 5
    finally:
        await slow.close()


async def test_abrupt_disconnects_return_counts_to_baseline(
    api: ApiServer, world: dict[str, Any]
) -> None:
    def counts() -> dict[str, int]:
        return httpx.get(f"{api.url}/health/ready").json()["checks"]["ws"]

    await asyncio.sleep(0.5)
    baseline = counts()
    # Four users, 15 sockets each: within WS_MAX_PER_USER (20).
    users = [register(api, f"ws-abrupt-{i}@example.com") for i in range(4)]
    sockets = [await connect(ws_url(api, users[i % 4][0])) for i in range(60)]
    for i, ws in enumerate(sockets):
        await send(ws, "join:event", eventId=world["e2"]["id"] if i % 2 else world["e1"]["id"])
        await send(ws, "join:user", userId=users[i % 4][1]["id"])
    await asyncio.sleep(1.0)
    assert counts()["clients"] >= baseline["clients"] + 60
    for ws in sockets:
        ws.transport.abort()  # no close handshake
    for _ in range(100):
        now = counts()
        if (now["clients"], now["eventRooms"], now["userRooms"]) == (
            baseline["clients"],
            baseline["eventRooms"],
            baseline["userRooms"],
        ) and now["tasks"] <= baseline["tasks"] + 2:
            break
        await asyncio.sleep(0.1)
    assert (now["clients"], now["eventRooms"], now["userRooms"]) == (
        baseline["clients"],
        baseline["eventRooms"],
        baseline["userRooms"],
    )
    assert now["tasks"] <= baseline["tasks"] + 2


async def test_bad_messages_get_error_frames(api: ApiServer) -> None:
    async with connect(ws_url(api)) as ws:
        for raw, code in (
            ("not json", "bad_message"),
            (json.dumps([1, 2]), "bad_message"),
            (json.dumps({"event": "join:event", "data": {"eventId": "../x"}}), "bad_message"),
            (json.dumps({"event": "join:event", "data": {"eventId": "nope"}}), "event_not_found"),
            (
                json.dumps({"event": "join:event", "data": {"eventId": "a", "since": "x"}}),
                "bad_message",
            ),
            (json.dumps({"event": "explode"}), "unknown_event"),
        ):
            await ws.send(raw)
            msg = (await until(ws, lambda m: m["event"] == "error"))[-1]
            assert msg["data"]["code"] == code, raw


async def test_two_server_processes_deliver_to_clients_on_either(
    api_factory: Callable[..., ApiServer], api: ApiServer, world: dict[str, Any]
) -> None:
    second = api_factory(redis=api.redis, DATA_DIR=str(api.data_dir))  # one shared store
    ev = world["e2"]
    async with (
        connect(ws_url(api)) as on_first,
        connect(ws_url(second)) as on_second,
    ):
        await joined(on_first, ev["id"])
        await joined(on_second, ev["id"])
        hold(second, world["buyer"], ev, 2)  # through the second process
        for ws in (on_first, on_second):
            got = await until(
                ws,
                lambda m: m["event"] == "ticket:stock-update" and m["data"]["eventoId"] == ev["id"],
            )
            assert got[-1]["data"]["categoriaId"] == ev["categorias"][0]["id"]
