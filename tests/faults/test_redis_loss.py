"""Redis lost, the store intact: the API re-arms live inventory from the store with the
sold counts of the persisted confirmed orders, and nothing is sold twice.

A server sells and confirms tickets; once the writer has persisted them the server is
stopped, Redis is emptied (FLUSHALL: every live key, stream, consumer group and script
gone) and a new server starts against the same store and the same, empty, Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from engine.redis_server import RedisServer
from persistence.factory import open_store
from tests.faults.conftest import (
    assert_problem,
    auth,
    create_event,
    register,
    run_audit,
    seed_and_login_admin,
    start_api,
    wait_until,
)

pytestmark = pytest.mark.slow


def _order(server: Any, token: str, event_id: str, items: dict[str, int]) -> httpx.Response:
    body = {
        "eventoId": event_id,
        "tickets": [{"categoriaId": c, "cantidad": n} for c, n in items.items()],
    }
    return httpx.post(f"{server.url}/api/orders", json=body, headers=auth(token), timeout=30)


def _confirm(server: Any, token: str, order_id: str, txid: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}/api/orders/{order_id}/confirm",
        json={"metodoPago": "card", "transactionId": txid},
        headers=auth(token),
        timeout=30,
    )


def _available(server: Any, event_id: str) -> dict[str, int]:
    r = httpx.get(f"{server.url}/api/events/{event_id}", timeout=30)
    assert r.status_code == 200, r.text
    return {c["nombre"]: c["disponible"] for c in r.json()["categorias"]}


def _sales(server: Any, admin: str, event_id: str) -> dict[str, tuple[int, int, int, int]]:
    r = httpx.get(
        f"{server.url}/api/admin/events/{event_id}/sales", headers=auth(admin), timeout=30
    )
    assert r.status_code == 200, r.text
    return {
        c["nombre"]: (c["total"], c["vendidos"], c["retenidos"], c["disponibles"])
        for c in r.json()["categorias"]
    }


def _persisted(server: Any, event_id: str, state: str | None = None) -> int:
    """Orders of the event in the store itself (the admin list also shows orders the
    writer has not stored yet: read-your-writes)."""
    store = open_store(server.env.get("MONGODB_URI") or None, server.data_dir)
    try:
        return store.list_orders(1, 1, status=state, event_id=event_id)[1]
    finally:
        store.close()


def _stored(server: Any, admin: str, event_id: str, state: str | None = None) -> int:
    params = {"eventoId": event_id, **({"estado": state} if state else {})}
    r = httpx.get(f"{server.url}/api/admin/orders", params=params, headers=auth(admin), timeout=30)
    assert r.status_code == 200, r.text
    total: int = r.json()["pagination"]["total"]
    return total


HOLD_MINUTES = "0.15"  # 9 s: long enough to confirm, short enough to see a deadline pass


@pytest.fixture(scope="module")
def lost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Sell and confirm, persist, stop the API, FLUSHALL, start a new API on the same store."""
    tmp = tmp_path_factory.mktemp("redis-loss")
    redis = RedisServer(data_dir=tmp / "redis", appendonly=True).start()
    server = start_api(tmp, redis, ORDER_RESERVATION_TIMEOUT_MINUTES=HOLD_MINUTES)
    again = None
    try:
        admin = seed_and_login_admin(server)
        org, _ = register(server, "org-loss@example.com", role="ORGANIZADOR")
        buyer, _ = register(server, "buyer-loss@example.com")
        event = create_event(server, org, [("A", 10, 10), ("B", 25, 5)])
        cat = {c["nombre"]: c["id"] for c in event["categorias"]}
        confirmed = []
        for i, items in enumerate(({cat["A"]: 2}, {cat["A"]: 2}, {cat["B"]: 5})):
            r = _order(server, buyer, event["id"], items)
            assert r.status_code == 201, r.text
            c = _confirm(server, buyer, r.json()["id"], f"tx-{i}")
            assert c.status_code == 200, c.text
            confirmed.append(c.json())
        lost_hold = _order(server, buyer, event["id"], {cat["A"]: 1})  # Redis will lose it
        assert lost_hold.status_code == 201, lost_hold.text
        assert _available(server, event["id"]) == {"A": 5, "B": 0}
        assert wait_until(lambda: _persisted(server, event["id"], "CONFIRMED") == 3, 30), (
            "the writer did not persist the confirmed orders"
        )
        assert wait_until(lambda: _persisted(server, event["id"]) == 4, 30)
        server.stop()

        with SyncRedis.from_url(redis.url) as client:
            client.flushall()
            client.script_flush()
            assert client.dbsize() == 0

        again = start_api(  # same store, same (now empty) Redis
            tmp, redis, ORDER_RESERVATION_TIMEOUT_MINUTES=HOLD_MINUTES
        )
        yield {
            "server": again,
            "redis": redis,
            "admin": admin,
            "buyer": buyer,
            "event": event,
            "cat": cat,
            "confirmed": confirmed,
            "lost": lost_hold.json(),
        }
    finally:
        if again is not None:
            again.stop()
        server.stop()
        redis.stop()


def test_redis_loss_rearms_from_the_store_and_resells_nothing(lost: dict[str, Any]) -> None:
    again, admin, buyer = lost["server"], lost["admin"], lost["buyer"]
    event, cat = lost["event"], lost["cat"]
    # Re-armed with the sold counts: the lost hold's ticket is back on sale.
    assert _available(again, event["id"]) == {"A": 6, "B": 0}
    assert _sales(again, admin, event["id"]) == {"A": (10, 4, 0, 6), "B": (5, 5, 0, 0)}
    cli = run_audit(lost["redis"].url, again.env)
    assert cli.returncode == 0, cli.stdout + cli.stderr

    # Nothing is resold: more than remains is refused, naming the category.
    other, _ = register(again, "late-buyer@example.com")
    body = assert_problem(_order(again, other, event["id"], {cat["B"]: 1}), (409,))
    assert body.get("categoriaId") == cat["B"], body
    assert_problem(_order(again, other, event["id"], {cat["A"]: 7}), (409,))
    last = _order(again, other, event["id"], {cat["A"]: 6})
    assert last.status_code == 201, last.text
    assert_problem(_order(again, other, event["id"], {cat["A"]: 1}), (409,))
    assert _available(again, event["id"]) == {"A": 0, "B": 0}

    # Persisted orders survive; their ids cannot move stock any more.
    for order in lost["confirmed"]:
        r = httpx.get(f"{again.url}/api/orders/{order['id']}", headers=auth(buyer), timeout=30)
        assert r.status_code == 200 and r.json()["estado"] == "CONFIRMED", r.text
        r = httpx.put(
            f"{again.url}/api/orders/{order['id']}/cancel", headers=auth(buyer), timeout=30
        )
        assert_problem(r, (404, 409))
    assert_problem(_confirm(again, buyer, lost["lost"]["id"], "tx-late"), (404, 409))
    assert _sales(again, admin, event["id"]) == {"A": (10, 4, 6, 0), "B": (5, 5, 0, 0)}
    cli = run_audit(lost["redis"].url, again.env)
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_a_hold_lost_with_redis_does_not_stay_reserved_forever(lost: dict[str, Any]) -> None:
    """The lost hold's tickets are back on sale and it cannot be confirmed: once its
    deadline has passed, it must not still read RESERVED (nor count as a live hold)."""
    again, admin, buyer = lost["server"], lost["admin"], lost["buyer"]
    hold = lost["lost"]
    deadline = datetime.fromisoformat(hold["expiraEn"].replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, deadline - time.time()) + 2.5)  # past it, and one sweep more
    r = httpx.get(f"{again.url}/api/orders/{hold['id']}", headers=auth(buyer), timeout=30)
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        assert r.json()["estado"] in ("EXPIRED", "CANCELLED"), (
            f"a hold lost with Redis still reads {r.json()['estado']} after its deadline"
        )
    # Holds made since the restart (by the other test of this module) expire later: wait
    # for them too, bounded.
    assert wait_until(lambda: _stored(again, admin, lost["event"]["id"], "RESERVED") == 0, 30), (
        "orders still RESERVED in the store"
    )
