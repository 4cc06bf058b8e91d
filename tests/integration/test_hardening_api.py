"""Production hardening through HTTP (issue 17): Idempotency-Key reuse is a 422, a past
event is not on sale, a deleted event leaves Redis, a full Redis is a 503 ``redis_full``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis as sync_redis

from engine import keys
from tests.integration.conftest import ApiServer, create_event, register
from tests.integration.conftest import bearer as _auth
from tests.integration.conftest import expect_problem as _problem
from tests.integration.conftest import unique_email as _email


def _order(
    api: ApiServer, token: str, event_id: str, items: list[tuple[str, int]], key: str | None = None
) -> httpx.Response:
    headers = _auth(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"eventoId": event_id, "tickets": [{"categoriaId": c, "cantidad": q} for c, q in items]}
    return httpx.post(f"{api.url}/api/orders", json=body, headers=headers, timeout=30)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event(api: ApiServer, **fields: Any) -> dict[str, Any]:
    return create_event(api, api.tokens["ORGANIZADOR"], [("A", 10, 50), ("B", 20, 50)], **fields)


def _cat(event: dict[str, Any], i: int = 0) -> str:
    cid: str = event["categorias"][i]["id"]
    return cid


def _redis(api: ApiServer) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(api.redis.url)


def test_an_idempotency_key_reused_with_another_body_is_422(api: ApiServer) -> None:
    token, _ = register(api, _email("idem"))
    one, two = _event(api), _event(api)
    first = _order(api, token, one["id"], [(_cat(one), 2)], key="k-1")
    assert first.status_code == 201, first.text
    same = _order(api, token, one["id"], [(_cat(one), 2)], key="k-1")
    assert same.status_code == 201 and same.json()["id"] == first.json()["id"]
    assert same.headers.get("idempotent-replayed") == "true"
    other_body = _order(api, token, one["id"], [(_cat(one), 3)], key="k-1")
    assert _problem(other_body, 422)["code"] == "idempotency_key_reused"
    other_event = _order(api, token, two["id"], [(_cat(two), 2)], key="k-1")
    assert _problem(other_event, 422)["code"] == "idempotency_key_reused"
    stock = httpx.get(f"{api.url}/api/events/{two['id']}", timeout=30).json()
    assert stock["categorias"][0]["disponible"] == 50  # the refused request held nothing
    someone_else, _ = register(api, _email("idem2"))
    assert _order(api, someone_else, two["id"], [(_cat(two), 2)], key="k-1").status_code == 201


def test_an_event_dated_in_the_past_cannot_be_created(api: ApiServer) -> None:
    r = httpx.post(
        f"{api.url}/api/events",
        json={
            "nombre": "Yesterday",
            "descripcion": "x",
            "fecha": _iso(datetime.now(UTC) - timedelta(days=1)),
            "ubicacion": "Madrid",
            "capacidadTotal": 10,
            "precioBase": 1,
            "categorias": [{"nombre": "A", "precio": 1, "cantidadTotal": 10, "beneficios": []}],
        },
        headers=_auth(api.tokens["ORGANIZADOR"]),
        timeout=30,
    )
    body = _problem(r, 422)
    assert body["code"] == "event_past"
    assert [e["field"] for e in body["errors"]] == ["fecha"]


def test_an_event_whose_date_has_passed_is_off_sale(api: ApiServer) -> None:
    token, _ = register(api, _email("past"))
    soon = datetime.now(UTC) + timedelta(seconds=2)
    event = _event(api, fecha=_iso(soon), nombre="Starting now")
    assert event["enVenta"] is True
    assert _order(api, token, event["id"], [(_cat(event), 1)]).status_code == 201
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.3)
    body = _problem(_order(api, token, event["id"], [(_cat(event), 1)]), 409)
    assert body["code"] == "event_past"
    got = httpx.get(f"{api.url}/api/events/{event['id']}", timeout=30).json()
    assert got["enVenta"] is False
    listed = httpx.get(f"{api.url}/api/events", params={"limit": 100}, timeout=30).json()
    assert {e["id"]: e["enVenta"] for e in listed["data"]}.get(event["id"]) is False


def test_moving_the_date_into_the_past_takes_it_off_sale(api: ApiServer) -> None:
    token, _ = register(api, _email("move"))
    event = _event(api)
    r = httpx.put(
        f"{api.url}/api/events/{event['id']}",
        json={"fecha": _iso(datetime.now(UTC) - timedelta(hours=1))},
        headers=_auth(api.tokens["ORGANIZADOR"]),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["enVenta"] is False
    assert _problem(_order(api, token, event["id"], [(_cat(event), 1)]), 409)["code"] == (
        "event_past"
    )


def test_a_deleted_event_leaves_redis(api: ApiServer) -> None:
    token, _ = register(api, _email("del"))
    event = _event(api)
    assert _order(api, token, event["id"], [(_cat(event), 1)]).status_code == 201
    r = httpx.delete(
        f"{api.url}/api/events/{event['id']}",
        params={"force": "true"},
        headers=_auth(api.tokens["ADMIN"]),
        timeout=30,
    )
    assert r.status_code == 204, r.text
    redis = _redis(api)
    try:
        assert not redis.sismember(keys.EVENTS, event["id"])
        assert not redis.exists(keys.inventory(event["id"]), keys.deadlines(event["id"]))
        assert redis.ttl(keys.orders(event["id"])) > 0
    finally:
        redis.close()


def test_a_full_redis_answers_503_redis_full_and_writes_nothing(api: ApiServer) -> None:
    token, _ = register(api, _email("oom"))
    event = _event(api)
    redis = _redis(api)
    before = redis.dump(keys.inventory(event["id"]))
    redis.config_set("maxmemory", 1)  # far below what is used: every write is refused
    try:
        r = _order(api, token, event["id"], [(_cat(event), 1), (_cat(event, 1), 2)])
        body = _problem(r, 503)
        assert body["code"] == "redis_full"
        assert r.headers["retry-after"]
        assert redis.dump(keys.inventory(event["id"])) == before
    finally:
        redis.config_set("maxmemory", 0)
        redis.close()
    assert _order(api, token, event["id"], [(_cat(event), 1)]).status_code == 201
