"""An on-sale rush through HTTP: thousands of buyers from several OS processes against two
server workers. Exactly the stock is sold, the audit is clean, and no request gets a 5xx."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.integration.conftest import ApiServer, assert_audit_clean, create_event, register

pytestmark = pytest.mark.slow

PROCESSES = 4
BUYERS_PER_PROCESS = 500  # 2,000 buyers, 2,000+ hold attempts for 600 tickets
STOCK = {"VIP": 100, "Floor": 200, "General": 300}


def _rush(url: str, tokens: list[str], event: dict, seed: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    cats = {c["nombre"]: c["id"] for c in event["categorias"]}

    async def run() -> tuple[Counter[str], Counter[str], int, list[str]]:
        rng = random.Random(seed)
        statuses: Counter[str] = Counter()
        held: Counter[str] = Counter()
        confirmed = 0
        order_ids: list[str] = []
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

            async def buyer(token: str) -> None:
                nonlocal confirmed
                headers = {"Authorization": f"Bearer {token}"}
                names = rng.sample(sorted(cats), rng.choice([1, 1, 2]))
                body = {
                    "eventoId": event["id"],
                    "tickets": [
                        {"categoriaId": cats[n], "cantidad": rng.randint(1, 3)} for n in names
                    ],
                }
                r = await client.post("/api/orders", json=body, headers=headers)
                statuses[str(r.status_code)] += 1
                if r.status_code != 201:
                    return
                order = r.json()
                order_ids.append(order["id"])
                if rng.random() < 0.7:
                    c = await client.put(
                        f"/api/orders/{order['id']}/confirm",
                        headers=headers,
                        json={"metodoPago": "card", "transactionId": f"t-{order['id']}"},
                    )
                    statuses[f"confirm-{c.status_code}"] += 1
                    if c.status_code == 200:
                        confirmed += sum(t["cantidad"] for t in order["tickets"])
                        return
                for t in order["tickets"]:
                    held[t["categoriaId"]] += t["cantidad"]

            await asyncio.gather(*(buyer(t) for t in tokens))
        return statuses, held, confirmed, order_ids

    out.put(asyncio.run(run()))


def test_http_rush_sells_exactly_the_stock(api_factory: Callable[..., ApiServer]) -> None:
    api = api_factory(workers=2)
    organizer, _ = register(api, "rush-org@example.com", role="ORGANIZADOR")
    event = create_event(api, organizer, [(n, 10.0, t) for n, t in STOCK.items()])
    # Many buyers share a handful of accounts (tokens): the engine does not care.
    tokens = [register(api, f"rush-buyer-{i}@example.com")[0] for i in range(20)]

    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [
        ctx.Process(
            target=_rush,
            args=(
                api.url,
                [tokens[(p * 7 + i) % len(tokens)] for i in range(BUYERS_PER_PROCESS)],
                event,
                p,
                out,
            ),
        )
        for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    statuses: Counter[str] = Counter()
    held: Counter[str] = Counter()
    confirmed = 0
    for s, h, c, _ in results:
        statuses.update(s)
        held.update(h)
        confirmed += c
    assert not [k for k in statuses if k.split("-")[-1].startswith("5")], statuses
    assert statuses["201"] + statuses["409"] == PROCESSES * BUYERS_PER_PROCESS, statuses
    assert statuses["409"] > 0  # demand exceeded supply

    r = httpx.get(
        f"{api.url}/api/admin/events/{event['id']}/sales",
        headers={"Authorization": f"Bearer {organizer}"},
    )
    assert r.status_code == 200, r.text
    sales = r.json()
    assert sales["vendidos"] == confirmed
    assert sales["retenidos"] == sum(held.values())
    assert sales["vendidos"] + sales["retenidos"] + sales["disponibles"] == sum(STOCK.values())
    assert sales["disponibles"] < 3 * len(STOCK)  # sold out up to request granularity
    by_id = {c["categoriaId"]: c for c in sales["categorias"]}
    for cat_id, n in held.items():
        assert by_id[cat_id]["retenidos"] == n

    assert_audit_clean(api)
