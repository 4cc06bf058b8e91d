"""The lean hold (api/hot_hold.py) answers exactly as the Litestar route does.

Two servers on the same redis-server and the same store (one DATA_DIR): ``fast`` with the
lean handler in front of Litestar, ``plain`` with ``HOT_HOLD=false``. The module runs
twice: ``fast`` as ``onsale serve`` runs it (the lean hold started by the HTTP protocol,
which writes pre-encoded answers itself: api/hot_http.py), and under plain ``uvicorn
--factory`` (the lean hold as an ASGI app, every byte through uvicorn's send). Every case of the
hold's contract tests (success, replay, each refusal, each bad input) is sent to both, and
the answers must have the same status, the same headers in the same order (but ``date``
and ``x-request-id``) and the same body (but an order's ``id``, ``creadoEn`` and
``expiraEn``, replaced by placeholders after checking their form). Each case also says
which side of ``fast`` must have answered it (``onsale_hot_hold_requests_total``): the
happy shapes by the lean handler, bad input by Litestar behind it; a differential test that
passes because both sides went through Litestar would prove nothing. Under ``onsale
serve``, each pre-encoded answer must also have been written by the protocol
(``onsale_hot_hold_written_total``), and none under plain uvicorn.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from engine.redis_server import RedisServer
from persistence.sqlite import SQLiteStore
from tests.integration.conftest import (
    TEST_SECRET,
    ApiServer,
    bearer,
    create_event,
    register,
    start_api,
    unique_email,
)

pytestmark = pytest.mark.timeout(300)

LIMIT = 200  # RATE_LIMIT_PER_MINUTE of both servers: per buyer (holds), per address (sign-ups)
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]+\.[0-9a-f]{16}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SKIP_HEADERS = {b"date", b"x-request-id"}


@pytest.fixture(scope="module", params=["serve", "plain-uvicorn"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, ApiServer]]:
    tmp = tmp_path_factory.mktemp("hot")
    redis = RedisServer(data_dir=tmp / "redis", appendonly=False).start()
    env = {"RATE_LIMIT_PER_MINUTE": str(LIMIT)}
    plain_uvicorn = request.param == "plain-uvicorn"
    started = []
    try:
        started.append(start_api(tmp, redis, plain_uvicorn=plain_uvicorn, HOT_HOLD="true", **env))
        started.append(start_api(tmp, redis, HOT_HOLD="false", **env))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()
        redis.stop()


@pytest.fixture(scope="module")
def org(servers: tuple[ApiServer, ApiServer]) -> str:
    return register(servers[0], unique_email("org"), role="ORGANIZADOR")[0]


def _served(api: ApiServer) -> dict[str, float]:
    """``onsale_hot_hold_requests_total`` by outcome, and ``written``: the answers the HTTP
    protocol wrote itself."""
    text = httpx.get(f"{api.url}/metrics", timeout=30).text
    found = re.findall(r'^onsale_hot_hold_requests_total\{outcome="(\w+)"\} (\S+)$', text, re.M)
    counts = {outcome: float(value) for outcome, value in found}
    written = re.search(r"^onsale_hot_hold_written_total (\S+)$", text, re.M)
    counts["written"] = float(written.group(1)) if written else 0.0
    return counts


def _under_serve(api: ApiServer) -> bool:
    return api.process is not None and "api.cli" in api.process.args


def _warm(api: ApiServer, token: str) -> None:
    """A request through Litestar's JWT middleware: the token is in its cache and its
    user checked (api/jwt_cache.py), as for any buyer who has called before."""
    r = httpx.get(f"{api.url}/api/orders/my-orders", headers=bearer(token), timeout=30)
    assert r.status_code == 200, r.text


def _send(api: ApiServer, request: dict[str, Any]) -> httpx.Response:
    request = dict(request)
    path = request.pop("path", "/api/orders")
    return httpx.request(request.pop("method", "POST"), f"{api.url}{path}", timeout=30, **request)


def _normalised(r: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(k.lower(), v) for k, v in r.headers.raw if k.lower() not in SKIP_HEADERS]
    body = r.content
    if r.status_code == 201:
        order = json.loads(body)
        assert ORDER_ID.match(order["id"]), order
        assert order["id"].startswith(order["eventoId"] + "."), order
        for name in ("id", "creadoEn", "expiraEn"):
            if name != "id":
                assert ISO.match(order[name]), order
            needle = json.dumps(order[name]).encode()
            assert body.count(needle) == 1, (name, body)
            body = body.replace(needle, f'"<{name}>"'.encode())
    return r.status_code, headers, body


def _pair(
    fast: ApiServer,
    plain: ApiServer,
    request: dict[str, Any],
    *,
    served: bool,
    direct: bool | None = None,
    other: dict[str, Any] | None = None,
    warm: bool = True,
) -> tuple[httpx.Response, httpx.Response]:
    """The same request (``other`` for ``plain`` when the case needs its own state) to
    both servers; equal answers, and ``fast`` answered it itself iff ``served``, its
    protocol writing the answer iff ``direct`` (default: ``served``) under onsale serve."""
    if served and warm:  # the user was checked within USER_CHECK_TTL_S, however slow
        _warm(fast, request["headers"]["Authorization"].removeprefix("Bearer "))
    before = _served(fast)
    a = _send(fast, request)
    b = _send(plain, other if other is not None else request)
    after = _served(fast)
    outcome = "served" if served else "litestar"
    for name in ("served", "litestar"):
        delta = after.get(name, 0) - before.get(name, 0)
        assert delta == (1 if name == outcome else 0), (name, delta, a.status_code, a.text)
    written = (served if direct is None else direct) and _under_serve(fast)
    assert after["written"] - before["written"] == written, (a.status_code, a.text)
    assert _normalised(a) == _normalised(b), (a.text, b.text)
    return a, b


def _order(event: dict[str, Any], qty: int = 1, cat: int = 0) -> dict[str, Any]:
    return {
        "eventoId": event["id"],
        "tickets": [{"categoriaId": event["categorias"][cat]["id"], "cantidad": qty}],
    }


def _post(token: str | None, body: Any, **headers: str) -> dict[str, Any]:
    return {"json": body, "headers": {**bearer(token), **headers}}


def _raw(token: str | None, content: bytes | str, **headers: str) -> dict[str, Any]:
    return {
        "content": content,
        "headers": {"Content-Type": "application/json", **bearer(token), **headers},
    }


@pytest.fixture
def buyer(servers: tuple[ApiServer, ApiServer]) -> str:
    token = register(servers[0], unique_email("buyer"))[0]
    _warm(servers[0], token)
    return token


@pytest.fixture
def event(servers: tuple[ApiServer, ApiServer], org: str) -> dict[str, Any]:
    return create_event(servers[0], org, [("VIP", 150, 20), ("General", 50, 30)])


# -- success ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/orders", {}),
        ("/api/orders/", {}),
        ("/api/orders?utm=x&page=2", {}),
        ("/api/orders/?a=1", {}),
        ("/api/orders", {"Content-Type": "application/json; charset=utf-8"}),
        ("/api/orders", {"Content-Type": "Application/JSON"}),
        ("/api/orders", {"Content-Type": "application/vnd.onsale+json"}),
        ("/api/orders", {"X-Request-Id": "client-chosen-id"}),
    ],
    ids=["plain", "slash", "query", "slash-query", "charset", "upper", "suffix", "request-id"],
)
def test_a_hold_is_the_same_201(
    servers: tuple[ApiServer, ApiServer],
    buyer: str,
    event: dict[str, Any],
    path: str,
    headers: dict[str, str],
) -> None:
    body = json.dumps(_order(event, 2))
    request = {"path": path, **_raw(buyer, body, **headers)}
    a, _ = _pair(*servers, request, served=True)
    assert a.status_code == 201 and "idempotent-replayed" not in a.headers
    assert a.headers["x-content-type-options"] == "nosniff"
    if "X-Request-Id" in headers:
        assert a.headers["x-request-id"] == "client-chosen-id"


@pytest.mark.parametrize("prefix", ["bearer ", "BEARER ", "Bearer  "])
def test_a_hold_with_the_bearer_scheme_in_any_case_is_the_same_201(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any], prefix: str
) -> None:
    """The auth-scheme is case-insensitive (RFC 7235), and one or more spaces may follow
    it (RFC 6750): the lean handler takes what the JWT middleware takes."""
    request = _raw(buyer, json.dumps(_order(event)), Authorization=f"{prefix}{buyer}")
    a, _ = _pair(*servers, request, served=True, warm=False)  # the buyer fixture warmed
    assert a.status_code == 201, a.text


def test_a_hold_of_two_categories_in_a_chunked_body(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    body = {
        "eventoId": event["id"],
        "tickets": [t for i in (0, 1) for t in _order(event, 1, i)["tickets"]],
    }
    raw = json.dumps(body).encode()

    def chunks() -> Iterator[bytes]:
        yield raw[:10]
        yield raw[10:]

    fast, plain = servers
    request = {"headers": {"Content-Type": "application/json", **bearer(buyer)}}
    a = _send(fast, {**request, "content": chunks()})
    b = _send(plain, {**request, "content": chunks()})
    assert a.status_code == 201, a.text
    assert _normalised(a) == _normalised(b)


def test_an_idempotent_replay_is_the_same(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    key_a, key_b = f"k-{time.time_ns()}-a", f"k-{time.time_ns()}-b"
    first = _pair(
        *servers,
        _post(buyer, _order(event), **{"Idempotency-Key": key_a}),
        served=True,
        other=_post(buyer, _order(event), **{"Idempotency-Key": key_b}),
    )
    again = _pair(
        *servers,
        _post(buyer, _order(event), **{"Idempotency-Key": key_a}),
        served=True,
        other=_post(buyer, _order(event), **{"Idempotency-Key": key_b}),
    )
    assert again[0].headers["idempotent-replayed"] == "true"
    assert again[0].json()["id"] == first[0].json()["id"]
    assert again[1].json()["id"] == first[1].json()["id"]


def test_a_token_the_process_has_not_seen_is_verified_and_holds(
    servers: tuple[ApiServer, ApiServer], org: str, event: dict[str, Any]
) -> None:
    """Verified by the JWT middleware's own class (pyjwt, the user check), then served:
    the first hold of each buyer on each worker at the start of a sale."""
    _, user = register(servers[0], unique_email("new"))
    now = int(time.time())
    claims = {"sub": user["id"], "iat": now, "exp": now + 600, "extras": {"role": "COMPRADOR"}}
    # Minted here, so no process has verified (or issued) this exact string before.
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    _pair(*servers, _post(token, _order(event)), served=True, warm=False)
    _pair(*servers, _post(token, _order(event)), served=True)  # now cached


def test_a_token_not_seen_whose_user_is_gone_is_litestars_401(
    servers: tuple[ApiServer, ApiServer], org: str, event: dict[str, Any]
) -> None:
    _, user = register(servers[0], unique_email("gone"))
    now = int(time.time())
    claims = {"sub": user["id"], "iat": now, "exp": now + 600, "extras": {"role": "COMPRADOR"}}
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")  # never seen by a process
    store = SQLiteStore(servers[0].data_dir / "onsale.db")
    try:
        assert store.delete_user(user["id"])
    finally:
        store.close()
    a, _ = _pair(*servers, _post(token, _order(event)), served=False)
    assert a.status_code == 401


# -- refusals --------------------------------------------------------------------------


def test_sold_out_is_the_same_409(
    servers: tuple[ApiServer, ApiServer], buyer: str, org: str
) -> None:
    event = create_event(servers[0], org, [("Solo", 10, 2)])
    a, _ = _pair(*servers, _post(buyer, _order(event, 3)), served=True)
    assert a.json()["code"] == "sold_out"
    assert _send(servers[0], _post(buyer, _order(event, 2))).status_code == 201
    for _ in range(3):  # the script's refusal, then (once the feed told) the gates'
        a, _ = _pair(*servers, _post(buyer, _order(event, 1)), served=True)
        assert a.json()["code"] == "sold_out" and a.json()["disponible"] == 0
        time.sleep(0.2)


MISSING_EVENT = {"eventoId": "f" * 24, "tickets": [{"categoriaId": "c", "cantidad": 1}]}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (MISSING_EVENT, "/api/orders"),
        (MISSING_EVENT, "/api/orders/?x=1"),  # the problem's instance: Litestar's path
        (None, "/api/orders"),
        (11, "/api/orders"),
    ],
    ids=["unknown-event", "unknown-event-slash", "unknown-category", "over-per-order-limit"],
)
def test_engine_refusals_are_the_same(
    servers: tuple[ApiServer, ApiServer],
    buyer: str,
    event: dict[str, Any],
    body: Any,
    path: str,
) -> None:
    if body is None:
        body = {"eventoId": event["id"], "tickets": [{"categoriaId": "nosuch", "cantidad": 1}]}
    elif isinstance(body, int):
        body = _order(event, body)
    a, _ = _pair(*servers, {"path": path, **_post(buyer, body)}, served=True)
    assert a.status_code in (404, 422), a.text
    assert a.headers["content-type"] == "application/problem+json"
    assert a.json()["instance"] == "/api/orders"


def test_a_closed_event_and_the_buyer_cap_are_the_same(
    servers: tuple[ApiServer, ApiServer], buyer: str, org: str
) -> None:
    fast = servers[0]
    closed = create_event(fast, org, [("A", 10, 5)])
    r = httpx.put(
        f"{fast.url}/api/events/{closed['id']}", json={"enVenta": False}, headers=bearer(org)
    )
    assert r.status_code == 200, r.text
    a, _ = _pair(*servers, _post(buyer, _order(closed)), served=True)
    assert a.status_code == 409, a.text
    capped = create_event(fast, org, [("A", 10, 50)], maxPorComprador=2)
    assert _send(fast, _post(buyer, _order(capped, 2))).status_code == 201
    a, _ = _pair(*servers, _post(buyer, _order(capped)), served=True)
    assert a.status_code == 409 and a.json()["code"] == "buyer_limit", a.text


def test_idempotency_key_refusals_are_the_same(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    for bad in ("has spaces", "k" * 129, "ñ".encode()):
        a, _ = _pair(*servers, _post(buyer, _order(event), **{"Idempotency-Key": bad}), served=True)
        assert a.json()["code"] == "bad_idempotency_key"
    key = f"reuse-{time.time_ns()}"
    assert (
        _send(servers[0], _post(buyer, _order(event), **{"Idempotency-Key": key})).status_code
        == 201
    )
    a, _ = _pair(*servers, _post(buyer, _order(event, 2), **{"Idempotency-Key": key}), served=True)
    assert a.status_code == 422 and a.json()["code"] == "idempotency_key_reused", a.text


def test_rate_limited_is_the_same_429(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    with servers[0].client(buyer) as http:  # the window's budget, spent on 404s
        for _ in range(LIMIT):
            http.post("/api/orders", json=MISSING_EVENT)
    for _attempt in range(5):  # both answers in the same second: the same Retry-After
        _warm(servers[0], buyer)
        started = int(time.time())
        before = _served(servers[0])
        a = _send(servers[0], _post(buyer, _order(event)))
        b = _send(servers[1], _post(buyer, _order(event)))
        if int(time.time()) == started and a.status_code == 429:
            break
    assert a.status_code == 429, a.text
    assert _served(servers[0])["served"] == before["served"] + 1
    assert a.headers["retry-after"]
    assert _normalised(a) == _normalised(b)


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := predicate():
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_admission_token_refusals_are_the_same(
    servers: tuple[ApiServer, ApiServer], org: str
) -> None:
    fast = servers[0]
    event = create_event(fast, org, [("A", 10.0, 10)])
    eid = event["id"]
    r = httpx.put(
        f"{fast.url}/api/events/{eid}/queue",
        json={"abreEn": _at(2), "entradasPorAdmision": 1, "minutosAdmision": 5},
        headers=bearer(org),
    )
    assert r.status_code == 200, r.text
    token = register(fast, unique_email("q"))[0]
    assert (
        httpx.post(f"{fast.url}/api/events/{eid}/queue/join", headers=bearer(token)).status_code
        == 201
    )
    _warm(fast, token)
    a, _ = _pair(*servers, _post(token, _order(event)), served=True)
    assert a.status_code == 403 and a.json()["code"] == "admission_required", a.text

    def admitted() -> str | None:
        me = httpx.get(f"{fast.url}/api/events/{eid}/queue/me", headers=bearer(token)).json()
        return me.get("admisionToken") if me.get("estado") == "ADMITIDO" else None

    admission = _wait(admitted)
    _warm(fast, token)
    a, _ = _pair(*servers, _post(token, _order(event), **{"Admission-Token": "nope"}), served=True)
    assert a.status_code == 403 and a.json()["code"] == "admission_invalid", a.text
    held = _send(fast, _post(token, _order(event), **{"Admission-Token": admission}))
    assert held.status_code == 201, held.text
    a, _ = _pair(
        *servers, _post(token, _order(event), **{"Admission-Token": admission}), served=True
    )
    assert a.status_code == 403 and a.json()["code"] == "admission_used", a.text
    # Too long for the route's header parameter: Litestar's own 422.
    a, _ = _pair(
        *servers, _post(token, _order(event), **{"Admission-Token": "t" * 129}), served=False
    )
    assert a.status_code == 422, a.text


# -- bad input: Litestar's own answer, through the lean handler -------------------------


BAD_INPUT: dict[str, Any] = {
    "no-token": lambda t, e: _post(None, _order(e)),
    "bad-token": lambda t, e: _post("x.y.z", _order(e)),
    "not-bearer": lambda t, e: {"json": _order(e), "headers": {"Authorization": f"Basic {t}"}},
    "text-plain": lambda t, e: _raw(t, json.dumps(_order(e)), **{"Content-Type": "text/plain"}),
    "no-content-type": lambda t, e: {"content": json.dumps(_order(e)), "headers": bearer(t)},
    "lower-basic": lambda t, e: {"json": _order(e), "headers": {"Authorization": f"basic {t}"}},
    "other-scheme": lambda t, e: {"json": _order(e), "headers": {"Authorization": f"Foo {t}"}},
    "bearer-prefix": lambda t, e: {"json": _order(e), "headers": {"Authorization": f"Bearerx {t}"}},
    "form": lambda t, e: _raw(
        t, json.dumps(_order(e)), **{"Content-Type": "application/x-www-form-urlencoded"}
    ),
    "json-lookalike": lambda t, e: _raw(t, json.dumps(_order(e)), **{"Content-Type": "text/json"}),
    "malformed": lambda t, e: _raw(t, '{"eventoId": '),
    "trailing-comma": lambda t, e: _raw(t, '{"a": 1,}'),
    "empty": lambda t, e: _raw(t, ""),
    "not-an-object": lambda t, e: _raw(t, "[1, 2]"),
    "bad-utf8": lambda t, e: _raw(t, b'{"eventoId": "\xff\xfe"}'),
    "unknown-field": lambda t, e: _post(t, _order(e) | {"total": 0}),
    "wrong-types": lambda t, e: _post(
        t, {"eventoId": 12, "tickets": [{"categoriaId": 1, "cantidad": "2"}]}
    ),
    "zero-quantity": lambda t, e: _post(t, _order(e, 0)),
    "empty-tickets": lambda t, e: _post(t, {"eventoId": e["id"], "tickets": []}),
    "missing-tickets": lambda t, e: _post(t, {"eventoId": e["id"]}),
    "bad-id": lambda t, e: _post(t, _order(e) | {"eventoId": "bad id!"}),
    "oversize": lambda t, e: _raw(t, '{"eventoId": "' + "x" * 70_000 + '"}'),
    "empty-idempotency-key": lambda t, e: _post(t, _order(e), **{"Idempotency-Key": ""}),
}


# What those answer (a valid token under another scheme, or a JSON body under another media
# type, was a 201 on both sides before: the middleware took any scheme, no one the type).
BAD_INPUT_STATUS = {
    "no-token": 401,
    "bad-token": 401,
    "not-bearer": 401,
    "lower-basic": 401,
    "other-scheme": 401,
    "bearer-prefix": 401,
    "text-plain": 415,
    "no-content-type": 415,
    "form": 415,
    "json-lookalike": 415,
    "malformed": 400,
    "trailing-comma": 400,
    "empty": 400,
    "bad-utf8": 400,
    "oversize": 413,
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_litestars_answer(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any], case: str
) -> None:
    request = BAD_INPUT[case](buyer, event)
    a, _ = _pair(*servers, request, served=False)
    assert a.headers["x-content-type-options"] == "nosniff"
    assert a.status_code == BAD_INPUT_STATUS.get(case, 422), a.text
    assert a.headers["content-type"] == "application/problem+json", a.headers


def test_a_chunked_oversize_body_is_litestars_413(
    servers: tuple[ApiServer, ApiServer], buyer: str
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"eventoId": "'
        for _ in range(10):
            yield b"x" * 8000
        yield b'"}'

    fast, plain = servers
    before = _served(fast)
    request = {"headers": {"Content-Type": "application/json", **bearer(buyer)}}
    a = _send(fast, {**request, "content": chunks()})
    b = _send(plain, {**request, "content": chunks()})
    assert a.status_code == 413, a.text
    assert _served(fast)["litestar"] == before["litestar"] + 1
    assert _normalised(a) == _normalised(b)


# -- what the lean handler keeps: metrics ----------------------------------------------


def _series(api: ApiServer, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(f"{api.url}/metrics", timeout=30).text.splitlines():
        m = re.match(rf"^{name}\{{(?P<labels>.*)\}} (?P<value>\S+)$", line)
        if m and all(
            dict(re.findall(r'(\w+)="([^"]*)"', m["labels"])).get(k) == v for k, v in labels.items()
        ):
            total += float(m["value"])
    return total


def test_fast_holds_are_counted_in_the_request_series(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    fast = servers[0]
    route = {"method": "POST", "path": "/api/orders", "app_name": "onsale"}
    names = ("onsale_requests_total", "onsale_request_duration_seconds_count")
    before = {
        (n, s): _series(fast, n, status_code=s, **route) for n in names for s in ("201", "404")
    }
    _warm(fast, buyer)
    served = _served(fast)["served"]
    for path in ("/api/orders", "/api/orders/?x=1"):
        assert _send(fast, {"path": path, **_post(buyer, _order(event))}).status_code == 201
    assert _send(fast, _post(buyer, MISSING_EVENT)).status_code == 404
    assert _served(fast)["served"] == served + 3
    for n in names:
        assert _series(fast, n, status_code="201", **route) == before[(n, "201")] + 2
        assert _series(fast, n, status_code="404", **route) == before[(n, "404")] + 1
    assert _series(fast, "onsale_requests_in_progress", **route) == 0


# -- Redis unavailable (last: it stops the shared redis-server) ------------------------


def test_redis_down_is_the_same_503(
    servers: tuple[ApiServer, ApiServer], buyer: str, event: dict[str, Any]
) -> None:
    fast, plain = servers
    _warm(fast, buyer)
    before = _served(fast)
    fast.redis.stop()
    a = _send(fast, _post(buyer, _order(event)))
    b = _send(plain, _post(buyer, _order(event)))
    assert _served(fast)["served"] == before["served"] + 1
    assert a.status_code == 503, a.text
    assert a.json()["code"] == "unavailable" and a.headers["retry-after"] == "1"
    assert _normalised(a) == _normalised(b)
