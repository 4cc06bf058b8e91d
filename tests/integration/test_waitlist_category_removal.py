"""Removing a category its buyers wait for, over real HTTP, WebSocket and Redis (SPEC 10.4):
its waitlist closes in the same step, every waiter is told on their channel
(``waitlist:closed``), nothing of the list stays in Redis, and a category with an offer
out (a hold) is refused as one with held tickets is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httpx
import msgspec
import pytest
import redis as sync_redis

from engine import keys
from tests.integration.conftest import (
    ApiServer,
    assert_audit_clean,
    bearer,
    create_event,
    expect_problem,
    register,
    unique_email,
)
from tests.integration.test_ws import connect, send, until, ws_url


@pytest.fixture(scope="module")
def server(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory()


def order(api: ApiServer, token: str, event_id: str, cat: str) -> dict[str, Any]:
    r = httpx.post(
        f"{api.url}/api/orders",
        json={"eventoId": event_id, "tickets": [{"categoriaId": cat, "cantidad": 1}]},
        headers=bearer(token),
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def cancel(api: ApiServer, token: str, order_id: str) -> None:
    r = httpx.put(f"{api.url}/api/orders/{order_id}/cancel", headers=bearer(token))
    assert r.status_code == 200, r.text


def join(api: ApiServer, token: str, event_id: str, cat: str, n: int = 1) -> httpx.Response:
    return httpx.post(
        f"{api.url}/api/events/{event_id}/waitlist",
        json={"categoriaId": cat, "cantidad": n},
        headers=bearer(token),
    )


def mine(api: ApiServer, token: str, event_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{api.url}/api/events/{event_id}/waitlist/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: list[dict[str, Any]] = r.json()
    return body


def remove(api: ApiServer, token: str, event_id: str, cat: str) -> httpx.Response:
    return httpx.delete(f"{api.url}/api/events/{event_id}/categories/{cat}", headers=bearer(token))


async def test_removing_a_category_closes_its_waitlist_and_tells_each_waiter(
    server: ApiServer,
) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    holder, _ = register(server, unique_email("h"))
    (a, ua), (b, ub), (c, uc), (d, ud) = (register(server, unique_email(n)) for n in "abcd")
    event = create_event(server, org, [("General", 10.0, 1), ("VIP", 50.0, 0), ("Late", 20, 1)])
    eid = event["id"]
    general, vip, late = (cat["id"] for cat in event["categorias"])
    # VIP has no tickets yet: a and b wait for it.
    assert join(server, a, eid, vip).json()["posicion"] == 1
    assert join(server, b, eid, vip).json()["posicion"] == 2
    # General: c waits for 2; the one ticket released is set aside for c (nothing on sale,
    # nothing held or sold).
    held = order(server, holder, eid, general)
    assert join(server, c, eid, general, 2).status_code == 201
    cancel(server, holder, held["id"])
    # Late: the ticket released is offered to d: a RESERVED order, i.e. a hold.
    held = order(server, holder, eid, late)
    assert join(server, d, eid, late).status_code == 201
    cancel(server, holder, held["id"])
    offered = mine(server, d, eid)
    assert [e["estado"] for e in offered] == ["OFERTADO"]

    rc: Any = sync_redis.Redis.from_url(server.redis.url, decode_responses=True)
    async with connect(ws_url(server, a)) as ws:
        await send(ws, "join:user", userId=ua["id"])
        await until(ws, lambda m: m["event"] == "joined")
        await asyncio.sleep(1.5)  # the hub refreshes the events its user rooms follow

        # An offer out is a hold: refused like held tickets, and nothing changes.
        body = expect_problem(remove(server, org, eid, late), 409)
        assert (body["code"], body["committed"]) == ("category_in_use", 1)
        assert mine(server, d, eid) == offered

        assert remove(server, org, eid, vip).status_code == 204
        assert remove(server, org, eid, general).status_code == 204

        # Nothing of the two lists is left in Redis; d's entry (Late) is untouched.
        inv = cast(dict[str, str], rc.hgetall(keys.inventory(eid)))
        assert [f for f in inv if f.endswith((f":{vip}", f":{general}"))] == []
        assert inv["wl"] == "0"
        assert rc.zrange(keys.waitlist_queue(eid), 0, -1) == []
        assert set(rc.hkeys(keys.waitlist(eid))) == {
            "seq",
            f"e:{offered[0]['id']}",
            f"u:{ud['id']}:{late}",
        }
        # Each waiter is told on their own channel, once.
        told = sorted(
            (msgspec.json.decode(f["data"])["categoriaId"], f["user"])
            for _, f in rc.xrange(keys.feed(eid))
            if f["event"] == "waitlist:closed"
        )
        assert told == sorted([(vip, ua["id"]), (vip, ub["id"]), (general, uc["id"])])
        frames = await until(ws, lambda m: m["event"] == "waitlist:closed")
    assert frames[-1]["data"] == {"eventoId": eid, "categoriaId": vip, "motivo": "category_removed"}
    assert frames[-1]["id"]

    # The buyers' reads: no entry of a category that is gone; joining or leaving it is a 404.
    assert mine(server, a, eid) == mine(server, b, eid) == mine(server, c, eid) == []
    assert mine(server, d, eid) == offered
    leave = f"{server.url}/api/events/{eid}/waitlist/me?categoriaId={vip}"
    assert expect_problem(httpx.delete(leave, headers=bearer(a)), 404)["code"] == (
        "category_not_found"
    )
    assert expect_problem(join(server, a, eid, vip), 404)["code"] == "category_not_found"
    shown = httpx.get(f"{server.url}/api/events/{eid}").json()["categorias"]
    assert [cat["id"] for cat in shown] == [late]
    assert_audit_clean(server, eid)
