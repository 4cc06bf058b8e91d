"""The admission queue (SPEC 10.1) through real HTTP and WebSocket, real Redis: bad input,
fairness from the revealed seed, tokens, exactness under concurrency across two server
processes, sell-out to every waiter, stock returning, heartbeat loss, a restart mid-queue,
and Redis Cluster."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets

from engine.redis_server import LocalCluster
from tests.integration.conftest import (
    REPO,
    ApiServer,
    assert_audit_clean,
    bearer,
    create_event,
    expect_problem,
    register,
    start_api,
    unique_email,
)

pytestmark = pytest.mark.timeout(300)


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _order(seed: str, users: list[str]) -> list[str]:
    key = bytes.fromhex(seed)
    return sorted(users, key=lambda u: (hmac.new(key, u.encode(), hashlib.sha256).digest(), u))


def _configure(api: ApiServer, org: str, event_id: str, **body: Any) -> httpx.Response:
    return httpx.put(
        f"{api.url}/api/events/{event_id}/queue", json=body, headers=bearer(org), timeout=30
    )


def _me(api: ApiServer, token: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/events/{event_id}/queue/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _hold(
    api: ApiServer, token: str, event: dict[str, Any], n: int = 1, admission: str | None = None
) -> httpx.Response:
    headers = bearer(token)
    if admission:
        headers["Admission-Token"] = admission
    return httpx.post(
        f"{api.url}/api/orders",
        json={
            "eventoId": event["id"],
            "tickets": [{"categoriaId": event["categorias"][0]["id"], "cantidad": n}],
        },
        headers=headers,
        timeout=30,
    )


def _wait(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def qapi(api_factory: Callable[..., ApiServer]) -> ApiServer:
    return api_factory(ORDER_RESERVATION_TIMEOUT_MINUTES="10")


def test_configure_bad_input_is_refused_without_state_change(qapi: ApiServer) -> None:
    org, _ = register(qapi, unique_email("qorg"), role="ORGANIZADOR")
    buyer, _ = register(qapi, unique_email("qb"))
    event = create_event(qapi, org, [("A", 10.0, 5)])
    base = f"{qapi.url}/api/events/{event['id']}/queue"
    body = expect_problem(_configure(qapi, org, event["id"], abreEn=_at(-60)), 422)
    assert body["code"] == "queue_opens_in_past"
    for absurd in (
        {"admisionesPorMinuto": 0},
        {"minutosAdmision": -1},
        {"entradasPorAdmision": 100000},
        {"latidoSegundos": 0},
        {"preColaMinutos": 10**9},
    ):
        r = _configure(qapi, org, event["id"], abreEn=_at(60), **absurd)
        assert r.status_code == 422, (absurd, r.text)
        assert r.json()["code"] == "validation_failed"
    assert expect_problem(httpx.get(base), 404)["code"] == "queue_not_found"
    r = _configure(qapi, buyer, event["id"], abreEn=_at(60))
    assert expect_problem(r, 403)["code"] == "not_owner"
    r = httpx.post(f"{base}/join", headers=bearer(buyer))
    assert expect_problem(r, 404)["code"] == "queue_not_found"
    unknown = f"{qapi.url}/api/events/{'0' * 24}/queue/join"
    assert expect_problem(httpx.post(unknown, headers=bearer(buyer)), 404)["code"] == (
        "event_not_found"
    )
    r = _configure(qapi, org, event["id"], abreEn=_at(3600), preColaMinutos=1)
    assert r.status_code == 200, r.text
    assert r.json()["estado"] == "PRE" and r.json()["semilla"] is None
    r = httpx.post(f"{base}/join", headers=bearer(buyer))
    assert expect_problem(r, 409)["code"] == "queue_not_started"
    r = httpx.get(f"{base}/me", headers=bearer(buyer))
    assert expect_problem(r, 404)["code"] == "not_in_queue"
    r = httpx.delete(f"{base}/me", headers=bearer(buyer))
    assert expect_problem(r, 404)["code"] == "not_in_queue"


def test_fair_opening_tokens_and_stock_returning(qapi: ApiServer) -> None:
    org, _ = register(qapi, unique_email("qorg"), role="ORGANIZADOR")
    event = create_event(qapi, org, [("A", 10.0, 3)])
    eid = event["id"]
    r = _configure(qapi, org, eid, abreEn=_at(3), entradasPorAdmision=1, minutosAdmision=5)
    assert r.status_code == 200, r.text
    commitment = r.json()["compromisoSemilla"]
    buyers = [register(qapi, unique_email("qb")) for _ in range(8)]
    for token, _ in buyers:
        r = httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(token))
        assert r.status_code == 201, r.text
        assert r.json()["estado"] == "ESPERANDO" and r.json()["posicion"] is None
    again = httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(buyers[0][0]))
    assert again.status_code == 200  # one place per buyer
    r = _hold(qapi, buyers[0][0], event)
    assert expect_problem(r, 403)["code"] == "admission_required"

    info = _wait(
        lambda: (q := httpx.get(f"{qapi.url}/api/events/{eid}/queue").json()).get("semilla") and q
    )
    assert hashlib.sha256(bytes.fromhex(info["semilla"])).hexdigest() == commitment
    by_id = {user["id"]: token for token, user in buyers}
    fair = _order(info["semilla"], list(by_id))
    _wait(lambda: httpx.get(f"{qapi.url}/api/events/{eid}/queue").json()["admitidos"] == 3)
    places = {u: _me(qapi, by_id[u], eid) for u in fair}
    assert [places[u]["estado"] for u in fair] == ["ADMITIDO"] * 3 + ["ESPERANDO"] * 5
    assert [places[u]["posicion"] for u in fair[3:]] == [1, 2, 3, 4, 5]
    verify = subprocess.run(
        [sys.executable, "-m", "api.cli", "queue", "verify", eid],
        cwd=REPO,
        env=qapi.env,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "0 differences" in verify.stdout

    first, second, third = fair[:3]
    tok1 = places[first]["admisionToken"]
    r = _hold(qapi, by_id[second], event, admission=tok1)  # another buyer's token
    assert expect_problem(r, 403)["code"] == "admission_invalid"
    r = _hold(qapi, by_id[first], event, n=4, admission=tok1)  # refused for stock: kept
    assert r.status_code == 409
    r = _hold(qapi, by_id[first], event, admission=tok1)
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    r = _hold(qapi, by_id[first], event, admission=tok1)
    assert expect_problem(r, 403)["code"] == "admission_used"
    assert _me(qapi, by_id[first], eid)["estado"] == "USADO"
    for u in (second, third):
        assert _hold(qapi, by_id[u], event, admission=places[u]["admisionToken"]).status_code == 201
    # Stock returning: a cancel admits the next in line within about a second.
    started = time.monotonic()
    r = httpx.put(f"{qapi.url}/api/orders/{order_id}/cancel", headers=bearer(by_id[first]))
    assert r.status_code == 200
    _wait(lambda: _me(qapi, by_id[fair[3]], eid)["estado"] == "ADMITIDO", timeout=5)
    assert time.monotonic() - started < 3
    # The organizer's sales view shows the queue.
    sales = httpx.get(f"{qapi.url}/api/admin/events/{eid}/sales", headers=bearer(org)).json()
    assert sales["cola"]["admitidos"] == 4 and sales["cola"]["convertidos"] == 3
    # Leaving gives the place up; rejoining is at the back.
    leaver = by_id[fair[5]]
    assert (
        httpx.delete(f"{qapi.url}/api/events/{eid}/queue/me", headers=bearer(leaver)).status_code
        == 204
    )
    back = httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(leaver))
    assert back.status_code == 201 and back.json()["posicion"] == 4  # behind the 3 left
    # Deleted mid-sale: the event is open to all again.
    assert (
        httpx.delete(f"{qapi.url}/api/events/{eid}/queue", headers=bearer(org)).status_code == 204
    )
    assert expect_problem(httpx.get(f"{qapi.url}/api/events/{eid}/queue"), 404)["code"] == (
        "queue_not_found"
    )
    assert _hold(qapi, by_id[fair[6]], event).status_code in (201, 409)


def test_sold_out_is_announced_to_every_waiter_over_ws(qapi: ApiServer) -> None:
    org, _ = register(qapi, unique_email("qorg"), role="ORGANIZADOR")
    event = create_event(qapi, org, [("A", 10.0, 1)])
    eid = event["id"]
    r = _configure(qapi, org, eid, abreEn=_at(2), entradasPorAdmision=1)
    assert r.status_code == 200, r.text
    buyers = [register(qapi, unique_email("qw")) for _ in range(4)]
    for token, _ in buyers:
        assert (
            httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(token)).status_code
            == 201
        )

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        base = qapi.url.replace("http://", "ws://") + "/ws?token="
        sockets = [
            await websockets.connect(base + token, ping_interval=None) for token, _ in buyers
        ]
        got: dict[str, list[dict[str, Any]]] = {user["id"]: [] for _, user in buyers}
        for ws in sockets:
            await ws.send(json.dumps({"event": "join:queue", "data": {"eventId": eid}}))

        async def read(ws: Any, user_id: str) -> None:
            with_deadline = time.monotonic() + 20
            while time.monotonic() < with_deadline:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                got[user_id].append(msg)
                if msg["event"] == "queue:admitted":
                    async with httpx.AsyncClient(base_url=qapi.url) as http:
                        token = next(t for t, u in buyers if u["id"] == user_id)
                        r = await http.post(
                            "/api/orders",
                            json={
                                "eventoId": eid,
                                "tickets": [
                                    {"categoriaId": event["categorias"][0]["id"], "cantidad": 1}
                                ],
                            },
                            headers={
                                **bearer(token),
                                "Admission-Token": msg["data"]["admisionToken"],
                            },
                        )
                        assert r.status_code == 201, r.text
                        await http.put(
                            f"/api/orders/{r.json()['id']}/confirm",
                            json={"metodoPago": "card", "transactionId": "tx-" + user_id},
                            headers=bearer(token),
                        )
                if msg["event"] == "queue:sold-out":
                    return

        readers = [read(ws, user["id"]) for ws, (_, user) in zip(sockets, buyers, strict=True)]
        await asyncio.gather(*readers)
        for ws in sockets:
            await ws.close()
        return got

    got = asyncio.run(scenario())
    names = {u: [m["event"] for m in frames] for u, frames in got.items()}
    admitted = [u for u, n in names.items() if "queue:admitted" in n]
    assert len(admitted) == 1
    assert all("queue:position" in n for n in names.values())
    for user_id, n in names.items():
        if user_id not in admitted:
            assert "queue:sold-out" in n, (user_id, n)
            assert (
                _me(qapi, next(t for t, u in buyers if u["id"] == user_id), eid)["estado"]
                == "AGOTADO"
            )


def test_heartbeat_loss(qapi: ApiServer) -> None:
    org, _ = register(qapi, unique_email("qorg"), role="ORGANIZADOR")
    event = create_event(qapi, org, [("A", 10.0, 0)], capacity=10)
    eid = event["id"]
    assert _configure(qapi, org, eid, abreEn=_at(1), latidoSegundos=1).status_code == 200
    silent, _ = register(qapi, unique_email("qs"))
    alive, _ = register(qapi, unique_email("qa"))
    for token in (silent, alive):
        httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(token))
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        _me(qapi, alive, eid)
        time.sleep(0.5)
    assert _me(qapi, silent, eid)["estado"] == "PERDIDO"
    assert _me(qapi, alive, eid)["estado"] in ("ESPERANDO", "AGOTADO")
    assert httpx.get(f"{qapi.url}/api/events/{eid}/queue").json()["enCola"] == 1
    r = httpx.post(f"{qapi.url}/api/events/{eid}/queue/join", headers=bearer(silent))
    assert r.status_code == 201  # back of the line


def _run_crowd(
    api: ApiServer, org: str, stock: int, crowd: int, opens_in: float = 4.0
) -> dict[str, Any]:
    """A crowd joins during the pre-queue, heartbeats, holds when admitted, confirms."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(lambda _: register(api, unique_email("qc"))[0], range(crowd)))
    event = create_event(api, org, [("A", 10.0, stock)])
    eid, cat = event["id"], event["categorias"][0]["id"]
    r = _configure(api, org, eid, abreEn=_at(opens_in + crowd / 150), entradasPorAdmision=1)
    assert r.status_code == 200, r.text
    results = {"held": 0, "refused": 0, "sold_out": 0, "no_token": 0}

    async def buyer(http: httpx.AsyncClient, token: str) -> None:
        h = bearer(token)
        r = await http.post(f"/api/events/{eid}/queue/join", headers=h)
        assert r.status_code == 201, r.text
        r = await http.post(
            "/api/orders",
            json={"eventoId": eid, "tickets": [{"categoriaId": cat, "cantidad": 1}]},
            headers=h,
        )
        if r.status_code == 403:
            results["no_token"] += 1
        while True:
            await asyncio.sleep(0.5)
            place = (await http.get(f"/api/events/{eid}/queue/me", headers=h)).json()
            if place["estado"] == "AGOTADO":
                results["sold_out"] += 1
                return
            if place["estado"] == "ADMITIDO":
                r = await http.post(
                    "/api/orders",
                    json={"eventoId": eid, "tickets": [{"categoriaId": cat, "cantidad": 1}]},
                    headers={**h, "Admission-Token": place["admisionToken"]},
                )
                if r.status_code != 201:
                    results["refused"] += 1
                    return
                results["held"] += 1
                await http.put(
                    f"/api/orders/{r.json()['id']}/confirm",
                    json={"metodoPago": "card", "transactionId": "tx-" + token[-12:]},
                    headers=h,
                )
                return

    async def crowd_run() -> None:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=api.url, timeout=60, limits=limits) as http:
            await asyncio.gather(*(buyer(http, t) for t in tokens))

    asyncio.run(crowd_run())
    results["event"] = event
    return results


def _audit(api: ApiServer) -> None:
    assert_audit_clean(api)


def test_exact_under_concurrency_across_two_processes(
    api_factory: Callable[..., ApiServer],
) -> None:
    api = api_factory(workers=2)
    org, _ = register(api, unique_email("qorg"), role="ORGANIZADOR")
    results = _run_crowd(api, org, stock=30, crowd=300)
    assert results["no_token"] == 300  # nobody holds without a token
    assert results["held"] == 30 and results["refused"] == 0
    assert results["sold_out"] == 270
    eid = results["event"]["id"]
    stock = httpx.get(f"{api.url}/api/events/{eid}").json()["categorias"][0]["disponible"]
    assert stock == 0
    sales = httpx.get(f"{api.url}/api/admin/events/{eid}/sales", headers=bearer(org)).json()
    assert sales["vendidos"] == 30 and sales["cola"]["admitidos"] == 30
    assert sales["cola"]["estado"] == "AGOTADA" and sales["cola"]["agotadoEn"]
    _audit(api)


def test_restart_mid_queue_loses_no_place_or_admission(
    api_factory: Callable[..., ApiServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    api = api_factory()
    org, _ = register(api, unique_email("qorg"), role="ORGANIZADOR")
    event = create_event(api, org, [("A", 10.0, 2)])
    eid = event["id"]
    assert _configure(api, org, eid, abreEn=_at(2), entradasPorAdmision=1).status_code == 200
    tokens = [register(api, unique_email("qr"))[0] for _ in range(5)]
    for t in tokens:
        httpx.post(f"{api.url}/api/events/{eid}/queue/join", headers=bearer(t))
    _wait(lambda: httpx.get(f"{api.url}/api/events/{eid}/queue").json()["admitidos"] == 2)
    before = {t: _me(api, t, eid) for t in tokens}
    api.stop()
    api.redis.stop()
    api.redis.start()
    again = start_api(tmp_path_factory.mktemp("restart"), api.redis, DATA_DIR=str(api.data_dir))
    try:
        after = {t: _me(again, t, eid) for t in tokens}
        for t in tokens:
            assert after[t]["estado"] == before[t]["estado"]
            assert after[t]["posicion"] == before[t]["posicion"]
            assert after[t]["admisionToken"] == before[t]["admisionToken"]
        admitted = [t for t in tokens if after[t]["estado"] == "ADMITIDO"]
        for t in admitted:
            r = _hold(again, t, event, admission=after[t]["admisionToken"])
            assert r.status_code == 201, r.text
    finally:
        again.stop()


def test_queue_on_redis_cluster(
    tmp_path_factory: pytest.TempPathFactory, api_factory: Callable[..., ApiServer]
) -> None:
    with LocalCluster(tmp_path_factory.mktemp("qcluster")) as cluster:
        api = api_factory(redis=cluster)
        org, _ = register(api, unique_email("qorg"), role="ORGANIZADOR")
        results = _run_crowd(api, org, stock=5, crowd=30, opens_in=2)
        assert results["held"] == 5 and results["sold_out"] == 25
        _audit(api)
        api.stop()
