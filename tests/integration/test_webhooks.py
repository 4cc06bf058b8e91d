"""Webhooks end to end (SPEC 11.1): a real API server, a real redis-server and a real
local HTTP receiver that verifies every signature with the Standard Webhooks reference
library (``standardwebhooks`` from PyPI), not with our code."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.conftest import (
    REPO,
    ApiServer,
    bearer,
    create_event,
    expect_problem,
    register,
    unique_email,
)
from tests.integration.webhook_receiver import Receiver

pytestmark = pytest.mark.timeout(180)

FAST_RETRIES = {
    "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
}
ALL_ORDER_TYPES = ["order.created", "order.confirmed", "order.cancelled", "order.expired"]


@pytest.fixture(scope="module")
def server(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(**FAST_RETRIES)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def world(api: ApiServer, stock: int = 100) -> dict[str, Any]:
    org, _ = register(api, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(api, unique_email("buyer"))
    event = create_event(api, org, [("General", 25.0, stock), ("VIP", 80.0, 10)])
    return {"org": org, "buyer": buyer, "event": event}


def hook(api: ApiServer, token: str, url: str, types: list[str], event_id: str | None) -> Any:
    body: dict[str, Any] = {"url": url, "eventos": types}
    if event_id is not None:
        body["eventoId"] = event_id
    r = httpx.post(f"{api.url}/api/webhooks", json=body, headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()


def hold(api: ApiServer, buyer: str, event: dict[str, Any], qty: int = 1) -> dict[str, Any]:
    category = event["categorias"][0]["id"]
    r = httpx.post(
        f"{api.url}/api/orders",
        json={"eventoId": event["id"], "tickets": [{"categoriaId": category, "cantidad": qty}]},
        headers=bearer(buyer),
    )
    assert r.status_code == 201, r.text
    return r.json()


def confirm(api: ApiServer, buyer: str, order_id: str) -> None:
    r = httpx.put(
        f"{api.url}/api/orders/{order_id}/confirm",
        json={"metodoPago": "card", "transactionId": f"tx-{order_id}"},
        headers=bearer(buyer),
    )
    assert r.status_code == 200, r.text


def cancel(api: ApiServer, buyer: str, order_id: str) -> None:
    r = httpx.put(f"{api.url}/api/orders/{order_id}/cancel", headers=bearer(buyer))
    assert r.status_code == 200, r.text


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    """Every 2xx-answered request, verified by the reference library."""
    wh = Webhook(secret)
    out = []
    for r in receiver.ok():
        payload = wh.verify(r.body, r.headers)
        assert isinstance(payload, dict)
        out.append({"id": r.id, **payload})
    return out


def first_by_id(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """De-duplicated by ``webhook-id``, as a receiver does (first arrival wins)."""
    seen: set[str] = set()
    out = []
    for m in messages:
        if m["id"] not in seen:
            seen.add(m["id"])
            out.append(m)
    return out


def assert_ordered_per_order(messages: list[dict[str, Any]]) -> None:
    """For every order: its created message arrives before any later state's."""
    firsts: dict[str, list[str]] = defaultdict(list)
    for m in first_by_id(messages):
        firsts[m["data"]["id"]].append(m["type"])
    for order_id, kinds in firsts.items():
        assert kinds[0] == "order.created", (order_id, kinds)
        assert len(kinds) <= 2, (order_id, kinds)


# -- registration, access, validation ---------------------------------------------------------


def test_register_list_get_delete_and_access(server: ApiServer, receiver: Receiver) -> None:
    w = world(server)
    created = hook(server, w["org"], receiver.url, ["order.confirmed"], w["event"]["id"])
    assert set(created) >= {"id", "url", "eventos", "eventoId", "activo", "secreto"}
    assert created["activo"] is True and created["eventoId"] == w["event"]["id"]
    secret = created["secreto"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24

    auth = bearer(w["org"])
    got = httpx.get(f"{server.url}/api/webhooks/{created['id']}", headers=auth)
    assert got.status_code == 200 and "secreto" not in got.json()
    listed = httpx.get(f"{server.url}/api/webhooks", headers=auth).json()
    assert [h["id"] for h in listed["data"]] == [created["id"]]
    assert listed["pagination"]["total"] == 1

    other, _ = register(server, unique_email("org2"), role="ORGANIZADOR")
    expect_problem(
        httpx.get(f"{server.url}/api/webhooks/{created['id']}", headers=bearer(other)), 404
    )
    expect_problem(
        httpx.delete(f"{server.url}/api/webhooks/{created['id']}", headers=bearer(other)), 404
    )
    assert httpx.get(f"{server.url}/api/webhooks", headers=bearer(other)).json()["data"] == []
    # another organizer's event, a buyer, nobody
    body = {"url": receiver.url, "eventos": ["order.created"], "eventoId": w["event"]["id"]}
    assert (
        expect_problem(
            httpx.post(f"{server.url}/api/webhooks", json=body, headers=bearer(other)), 403
        )["code"]
        == "not_owner"
    )
    expect_problem(
        httpx.post(f"{server.url}/api/webhooks", json=body, headers=bearer(w["buyer"])), 403
    )
    expect_problem(httpx.post(f"{server.url}/api/webhooks", json=body), 401)

    admin = server.tokens.get("ADMIN")
    if admin:
        assert created["id"] in [
            h["id"]
            for h in httpx.get(
                f"{server.url}/api/webhooks?limit=100", headers=bearer(admin)
            ).json()["data"]
        ]

    assert (
        httpx.delete(f"{server.url}/api/webhooks/{created['id']}", headers=auth).status_code == 204
    )
    expect_problem(httpx.get(f"{server.url}/api/webhooks/{created['id']}", headers=auth), 404)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x", "eventos": ["order.created"]}, "webhook_url_invalid"),
        ({"url": "not a url at all", "eventos": ["order.created"]}, "webhook_url_invalid"),
        ({"url": "https://u:p@example.com/x", "eventos": ["order.created"]}, "webhook_url_invalid"),
        ({"url": "https://example.com/x", "eventos": ["order.shipped"]}, "validation_failed"),
        ({"url": "https://example.com/x", "eventos": []}, "validation_failed"),
        ({"url": "https://example.com/x"}, "validation_failed"),
        (
            {"url": "https://example.com/x", "eventos": ["order.created", "order.created"]},
            "webhook_types_duplicated",
        ),
    ],
)
def test_bad_input_is_422_with_a_code(server: ApiServer, body: dict[str, Any], code: str) -> None:
    w = world(server)
    full = {**body, "eventoId": w["event"]["id"]}
    problem = expect_problem(
        httpx.post(f"{server.url}/api/webhooks", json=full, headers=bearer(w["org"])), 422
    )
    assert problem["code"] == code


def test_an_organizer_must_name_their_event(server: ApiServer) -> None:
    w = world(server)
    body = {"url": "https://example.com/x", "eventos": ["order.created"]}
    problem = expect_problem(
        httpx.post(f"{server.url}/api/webhooks", json=body, headers=bearer(w["org"])), 422
    )
    assert problem["code"] == "webhook_event_required"
    body["eventoId"] = "no-such-event"
    expect_problem(
        httpx.post(f"{server.url}/api/webhooks", json=body, headers=bearer(w["org"])), 404
    )


# -- deliveries -------------------------------------------------------------------------------


def test_signed_deliveries_in_order_per_order(server: ApiServer, receiver: Receiver) -> None:
    w = world(server)
    created = hook(server, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    orders = [hold(server, w["buyer"], w["event"]) for _ in range(12)]
    for o in orders[:8]:
        confirm(server, w["buyer"], o["id"])
    for o in orders[8:]:
        cancel(server, w["buyer"], o["id"])
    receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 24)
    messages = first_by_id(verified(receiver, created["secreto"]))
    assert len(messages) == 24
    kinds = defaultdict(set)
    for m in messages:
        kinds[m["data"]["id"]].add(m["type"])
        assert set(m) >= {"type", "timestamp", "data"}
        assert m["data"]["eventoId"] == w["event"]["id"]
    assert all(kinds[o["id"]] == {"order.created", "order.confirmed"} for o in orders[:8])
    assert all(kinds[o["id"]] == {"order.created", "order.cancelled"} for o in orders[8:])
    assert_ordered_per_order(messages)
    confirmed = next(m for m in messages if m["type"] == "order.confirmed")
    assert confirmed["data"]["estado"] == "CONFIRMED" and confirmed["data"]["metodoPago"] == "card"
    # webhook-timestamp is the attempt's time, in Unix seconds
    assert abs(int(receiver.ok()[0].headers["webhook-timestamp"]) - time.time()) < 60

    log = httpx.get(
        f"{server.url}/api/webhooks/{created['id']}/deliveries?limit=100", headers=bearer(w["org"])
    ).json()
    assert log["pagination"]["total"] == 24
    item = log["data"][0]
    assert set(item) >= {
        "id",
        "tipo",
        "estado",
        "intentos",
        "ultimoCodigo",
        "latenciaMs",
        "creadoEn",
    }
    assert {d["estado"] for d in log["data"]} == {"DELIVERED"}
    assert {d["ultimoCodigo"] for d in log["data"]} == {200}


def test_only_the_subscribed_types_and_event(server: ApiServer, receiver: Receiver) -> None:
    w = world(server)
    other_event = create_event(server, w["org"], [("General", 10.0, 10)])
    created = hook(server, w["org"], receiver.url, ["order.confirmed"], w["event"]["id"])
    a = hold(server, w["buyer"], w["event"])
    b = hold(server, w["buyer"], other_event)
    confirm(server, w["buyer"], a["id"])
    confirm(server, w["buyer"], b["id"])
    receiver.wait(lambda r: len(r.ok()) >= 1)
    time.sleep(1.5)
    messages = first_by_id(verified(receiver, created["secreto"]))
    assert [(m["type"], m["data"]["id"]) for m in messages] == [("order.confirmed", a["id"])]


def test_event_sold_out_once_and_event_updated(server: ApiServer, receiver: Receiver) -> None:
    org, _ = register(server, unique_email("org"), role="ORGANIZADOR")
    buyer, _ = register(server, unique_email("buyer"))
    event = create_event(server, org, [("Only", 10.0, 3)])
    created = hook(server, org, receiver.url, ["event.sold_out", "event.updated"], event["id"])
    first = hold(server, buyer, event, qty=2)
    hold(server, buyer, event, qty=1)  # the last ticket: sold out
    cancel(server, buyer, first["id"])  # stock is back ...
    hold(server, buyer, event, qty=2)  # ... and gone again: a second sell-out
    r = httpx.put(
        f"{server.url}/api/events/{event['id']}", json={"nombre": "Renamed"}, headers=bearer(org)
    )
    assert r.status_code == 200, r.text
    receiver.wait(lambda rc: len(rc.ok()) >= 2)
    time.sleep(1.5)
    messages = first_by_id(verified(receiver, created["secreto"]))
    kinds = [m["type"] for m in messages]
    assert kinds.count("event.updated") == 1
    # one per sell-out the dispatcher observes: two, or one when both fell in one read batch
    assert 1 <= kinds.count("event.sold_out") <= 2
    sold_out = next(m for m in messages if m["type"] == "event.sold_out")
    assert sold_out["data"]["id"] == event["id"]
    assert [c["disponible"] for c in sold_out["data"]["categorias"]] == [0]
    updated = next(m for m in messages if m["type"] == "event.updated")
    assert updated["data"]["nombre"] == "Renamed"


def test_test_message(server: ApiServer, receiver: Receiver) -> None:
    w = world(server)
    created = hook(server, w["org"], receiver.url, ["order.confirmed"], w["event"]["id"])
    r = httpx.post(f"{server.url}/api/webhooks/{created['id']}/test", headers=bearer(w["org"]))
    assert r.status_code == 202, r.text
    assert r.json()["tipo"] == "webhook.test"
    receiver.wait(lambda rc: len(rc.ok()) >= 1)
    (message,) = verified(receiver, created["secreto"])
    assert message["type"] == "webhook.test" and message["id"] == r.json()["id"]


def test_retries_after_500s_and_timeouts_with_a_stable_id(
    server: ApiServer, receiver: Receiver
) -> None:
    # every message: a 500, then a reply slower than the 1 s timeout, then a 200
    def flaky(_id: str, n: int) -> tuple[int, float]:
        return {1: (500, 0.0), 2: (504, 1.6)}.get(n, (200, 0.0))

    receiver.behaviour = flaky
    w = world(server)
    created = hook(server, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    orders = [hold(server, w["buyer"], w["event"]) for _ in range(3)]
    for o in orders:
        confirm(server, w["buyer"], o["id"])
    receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 6, timeout=60)
    receiver.wait(lambda r: len(r.received) >= 18)  # the slow replies are recorded last
    by_id: dict[str, list[bytes]] = defaultdict(list)
    for r in receiver.received:
        by_id[r.id].append(r.body)
    assert len(by_id) == 6
    for bodies in by_id.values():
        assert len(bodies) >= 3  # 500, timeout, success: same webhook-id every time
        assert len(set(bodies)) == 1  # and the same body
    # the confirm of an order was never sent before its hold was delivered
    delivered_at = {r.id: r.at for r in receiver.ok()}
    for r in receiver.received:
        payload = Webhook(created["secreto"]).verify(r.body, r.headers)
        if payload["type"] == "order.confirmed":
            hold_id = next(
                m["id"]
                for m in verified(receiver, created["secreto"])
                if m["type"] == "order.created" and m["data"]["id"] == payload["data"]["id"]
            )
            assert r.at > delivered_at[hold_id]
    log = httpx.get(
        f"{server.url}/api/webhooks/{created['id']}/deliveries", headers=bearer(w["org"])
    ).json()["data"]
    assert all(d["intentos"] >= 3 and d["estado"] == "DELIVERED" for d in log)


def test_a_receiver_down_for_a_while_loses_nothing(server: ApiServer, receiver: Receiver) -> None:
    w = world(server)
    created = hook(server, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    receiver.stop()
    orders = [hold(server, w["buyer"], w["event"]) for _ in range(10)]
    for o in orders:
        confirm(server, w["buyer"], o["id"])
    time.sleep(4)  # several refused attempts each
    log = httpx.get(
        f"{server.url}/api/webhooks/{created['id']}/deliveries?limit=100", headers=bearer(w["org"])
    ).json()["data"]
    assert log and all(d["estado"] == "PENDING" for d in log)
    assert any(d["intentos"] >= 1 for d in log)
    receiver.start()
    receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 20, timeout=60)
    messages = first_by_id(verified(receiver, created["secreto"]))
    assert {(m["type"], m["data"]["id"]) for m in messages} == {
        (t, o["id"]) for o in orders for t in ("order.created", "order.confirmed")
    }
    assert_ordered_per_order(messages)


def test_endpoint_failing_continuously_is_disabled(
    api_factory: Callable[..., ApiServer], receiver: Receiver
) -> None:
    api = api_factory(**FAST_RETRIES, WEBHOOK_DISABLE_FAILURES="3", WEBHOOK_DISABLE_HOURS="0.0003")
    receiver.behaviour = lambda _id, _n: (500, 0.0)
    w = world(api)
    created = hook(api, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    hold(api, w["buyer"], w["event"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = httpx.get(f"{api.url}/api/webhooks/{created['id']}", headers=bearer(w["org"])).json()
        if not got["activo"]:
            break
        time.sleep(0.2)
    assert got["activo"] is False
    assert "consecutive failed deliveries" in got["motivoDesactivacion"]
    log = httpx.get(
        f"{api.url}/api/webhooks/{created['id']}/deliveries", headers=bearer(w["org"])
    ).json()["data"]
    assert [d["estado"] for d in log] == ["FAILED"]
    assert log[0]["ultimoCodigo"] == 500


def test_a_delivery_is_failed_after_the_retry_window(
    api_factory: Callable[..., ApiServer], receiver: Receiver
) -> None:
    api = api_factory(**FAST_RETRIES, WEBHOOK_RETRY_HOURS="0.0005")  # 1.8 s
    receiver.behaviour = lambda _id, _n: (503, 0.0)
    w = world(api)
    created = hook(api, w["org"], receiver.url, ["order.created"], w["event"]["id"])
    hold(api, w["buyer"], w["event"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = httpx.get(
            f"{api.url}/api/webhooks/{created['id']}/deliveries", headers=bearer(w["org"])
        ).json()["data"]
        if log and log[0]["estado"] == "FAILED":
            break
        time.sleep(0.2)
    assert (
        log[0]["estado"] == "FAILED" and log[0]["intentos"] >= 2 and log[0]["ultimoCodigo"] == 503
    )


def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    api_factory: Callable[..., ApiServer], receiver: Receiver, tmp_path: Any
) -> None:
    api = api_factory(**{**FAST_RETRIES, "WEBHOOK_TIMEOUT_SECONDS": "3"}, RUN_WEBHOOKS="false")
    receiver.behaviour = lambda _id, _n: (200, 0.4)  # slow: kills land mid-attempt
    env = {**api.env, "RUN_WEBHOOKS": "true"}

    def dispatcher() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "webhooks", "--name", "wh-test"],
            cwd=REPO,
            env=env,
            stdout=(tmp_path / "wh.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    w = world(api)
    created = hook(api, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    proc = dispatcher()
    try:
        orders = [hold(api, w["buyer"], w["event"]) for _ in range(15)]
        for o in orders:
            confirm(api, w["buyer"], o["id"])
        for _ in range(2):  # SIGKILL twice while attempts are in flight
            receiver.wait(lambda r: len(r.received) >= 2, timeout=30)
            time.sleep(0.6)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = dispatcher()
        receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 30, timeout=90)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    messages = first_by_id(verified(receiver, created["secreto"]))
    assert {(m["type"], m["data"]["id"]) for m in messages} == {
        (t, o["id"]) for o in orders for t in ("order.created", "order.confirmed")
    }
    assert_ordered_per_order(messages)


def test_entries_wait_for_a_dispatcher_started_late(
    api_factory: Callable[..., ApiServer], receiver: Receiver, tmp_path: Any
) -> None:
    """The writer persists and trims the logs while no dispatcher runs; trimming stays
    behind the webhooks group (created on the logs when the endpoint was registered), so
    nothing is lost."""
    api = api_factory(**FAST_RETRIES, RUN_WEBHOOKS="false")
    w = world(api)
    created = hook(api, w["org"], receiver.url, ALL_ORDER_TYPES, w["event"]["id"])
    orders = [hold(api, w["buyer"], w["event"]) for _ in range(5)]
    for o in orders:
        confirm(api, w["buyer"], o["id"])
    time.sleep(3)  # the writer stored everything and trimmed what it could
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "webhooks"],
        cwd=REPO,
        env={**api.env, "RUN_WEBHOOKS": "true"},
        stdout=(tmp_path / "wh.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 10, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    messages = first_by_id(verified(receiver, created["secreto"]))
    assert len(messages) == 10
    assert_ordered_per_order(messages)


def test_with_no_endpoint_the_logs_are_passed_by_not_read(
    api_factory: Callable[..., ApiServer], receiver: Receiver
) -> None:
    """While no endpoint is active the dispatcher moves its group past the order logs
    (nothing acknowledged is owed to anyone) instead of reading and decoding every entry:
    no XREADGROUP, so its group has no consumer, yet it never holds back trimming. An
    endpoint registered afterwards gets the changes after its registration."""
    import redis as redis_sync

    from engine import keys

    api = api_factory(**FAST_RETRIES)
    w = world(api)
    for _ in range(20):
        hold(api, w["buyer"], w["event"])
    log = keys.order_log(w["event"]["id"])
    client = redis_sync.Redis.from_url(api.redis.url, decode_responses=True)
    try:
        deadline = time.monotonic() + 20
        while True:  # the writer trims behind the slowest group: ours must not hold it back
            group = next(
                (g for g in client.xinfo_groups(log) if g["name"] == keys.WEBHOOK_GROUP), None
            )
            if group is not None and not group["pending"] and client.xlen(log) == 0:
                break
            assert time.monotonic() < deadline, f"the log was not trimmed: {group}"
            time.sleep(0.1)
        assert client.xinfo_consumers(log, keys.WEBHOOK_GROUP) == []  # nothing was read
    finally:
        client.close()

    created = hook(api, w["org"], receiver.url, ["order.created"], w["event"]["id"])
    later = [hold(api, w["buyer"], w["event"])["id"] for _ in range(3)]
    receiver.wait(lambda r: len(first_by_id(verified(r, created["secreto"]))) >= 3, timeout=30)
    time.sleep(1.5)  # a pass-by or a late read would deliver the first 20 now
    got = [m["data"]["id"] for m in first_by_id(verified(receiver, created["secreto"]))]
    assert sorted(got) == sorted(later)


# -- SSRF (production settings) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def production(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(APP_ENV="production", BCRYPT_ROUNDS="12", HOST="127.0.0.1")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "webhook_url_not_https"),
        ("https://127.0.0.1/hook", "webhook_url_private"),
        ("https://localhost/hook", "webhook_url_private"),
        ("https://10.1.2.3/hook", "webhook_url_private"),
        ("https://192.168.0.10:8443/hook", "webhook_url_private"),
        ("https://169.254.169.254/latest/meta-data", "webhook_url_private"),
        ("https://[::1]/hook", "webhook_url_private"),
        ("https://[::ffff:127.0.0.1]/hook", "webhook_url_private"),
        ("https://[fd00::1]/hook", "webhook_url_private"),
        ("https://100.64.0.1/hook", "webhook_url_private"),
        ("https://0.0.0.0/hook", "webhook_url_private"),
    ],
)
def test_ssrf_refusals_in_production(production: ApiServer, url: str, code: str) -> None:
    org, _ = register(production, unique_email("prod"), role="ORGANIZADOR")
    event = create_event(production, org, [("General", 10.0, 5)])
    body = {"url": url, "eventos": ["order.created"], "eventoId": event["id"]}
    problem = expect_problem(
        httpx.post(f"{production.url}/api/webhooks", json=body, headers=bearer(org)), 422
    )
    assert problem["code"] == code


def test_private_receivers_allowed_in_production_when_configured(
    api_factory: Callable[..., ApiServer],
) -> None:
    api = api_factory(
        APP_ENV="production", BCRYPT_ROUNDS="12", HOST="127.0.0.1", WEBHOOK_ALLOW_PRIVATE="true"
    )
    org, _ = register(api, unique_email("prod"), role="ORGANIZADOR")
    event = create_event(api, org, [("General", 10.0, 5)])
    ok = {"url": "https://127.0.0.1:9/hook", "eventos": ["order.created"], "eventoId": event["id"]}
    assert httpx.post(f"{api.url}/api/webhooks", json=ok, headers=bearer(org)).status_code == 201
    plain = {**ok, "url": "http://127.0.0.1:9/hook"}
    problem = expect_problem(
        httpx.post(f"{api.url}/api/webhooks", json=plain, headers=bearer(org)), 422
    )
    assert problem["code"] == "webhook_url_not_https"
