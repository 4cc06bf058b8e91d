"""The engine, expiry, writer, API and WebSocket feed on a real local Redis Cluster
(3 primaries + 3 replicas on loopback), and a primary failover during a rush."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError

from engine import keys
from engine.audit import audit
from engine.core import Engine, EngineConfig
from engine.errors import SoldOut
from engine.expiry import ExpiryListener, Sweeper
from engine.models import CategorySpec
from engine.redis_server import LocalCluster
from persistence.aio import AsyncStore
from persistence.sqlite import SQLiteStore
from persistence.writer import OrderWriter
from tests.integration.conftest import ApiServer, assert_audit_clean, create_event, register

pytestmark = pytest.mark.slow

EVENTS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
async def cluster_engine(cluster: LocalCluster) -> AsyncIterator[Engine]:
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    for node in client.get_primaries():
        await client.flushall(target_nodes=node)
    engine = Engine(client, EngineConfig(hold_ttl_ms=600_000))
    await engine.start()
    yield engine
    await client.aclose()


def test_events_spread_over_several_slots() -> None:
    slots = {key_slot(keys.inventory(e).encode()) for e in EVENTS}
    assert len(slots) == len(EVENTS)
    for e in EVENTS:
        built = [
            keys.inventory(e),
            keys.orders(e),
            keys.deadlines(e),
            keys.feed(e),
            keys.order_log(e),
            keys.timer(e, f"{e}.x"),
            keys.idempotency(e),
        ]
        assert len({key_slot(k.encode()) for k in built}) == 1


async def test_concurrent_holds_on_every_shard(cluster_engine: Engine) -> None:
    engine = cluster_engine
    for e in EVENTS:
        await engine.arm_event(
            e,
            [
                CategorySpec(id="a", name="A", price=1, total=100),
                CategorySpec(id="b", name="B", price=2, total=50),
            ],
        )
    held: Counter[tuple[str, str]] = Counter()
    refused = 0

    async def buyer(i: int) -> None:
        nonlocal refused
        e = EVENTS[i % len(EVENTS)]
        items = [("a", 1 + i % 3)] if i % 4 else [("a", 1), ("b", 2)]
        try:
            res = await engine.hold(e, f"u{i}", items)
        except SoldOut:
            refused += 1
            return
        for t in res.order.tickets:
            held[(e, t.category_id)] += t.quantity

    await asyncio.gather(*(buyer(i) for i in range(3000)))
    assert refused > 0
    for e in EVENTS:
        stock = await engine.stock(e)
        assert stock is not None
        for c in stock.categories:
            assert c.held == held[(e, c.id)]
            assert c.available + c.held + c.sold == c.total and c.available >= 0
    report = await audit(engine)
    assert report.clean and report.events == len(EVENTS), report.violations


async def test_noscript_on_every_primary(cluster_engine: Engine) -> None:
    engine = cluster_engine
    for e in EVENTS:
        await engine.arm_event(e, [CategorySpec(id="a", name="A", price=1, total=10)])
    await engine.redis.script_flush()  # every primary
    results = await asyncio.gather(*(engine.hold(e, "u", [("a", 1)]) for e in EVENTS))
    assert all(r.created for r in results)


async def test_listener_subscribes_to_every_primary(cluster: LocalCluster) -> None:
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    for node in client.get_primaries():
        await client.flushall(target_nodes=node)
    engine = Engine(client, EngineConfig(hold_ttl_ms=300))
    await engine.start()
    for e in EVENTS:
        await engine.arm_event(e, [CategorySpec(id="a", name="A", price=1, total=100)])
    listener = ExpiryListener(engine, topology_interval=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.wait_for(listener.ready.wait(), 10)
    await asyncio.sleep(0.3)
    assert len(listener.nodes) == 3
    for i in range(60):
        await engine.hold(EVENTS[i % len(EVENTS)], f"u{i}", [("a", 1)])

    async def all_back() -> bool:
        stocks = await engine.stocks(EVENTS)
        return all(s.categories[0].available == 100 for s in stocks.values())

    for _ in range(100):
        if await all_back():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert await all_back()
    assert listener.stats.released_by_listener == 60  # no sweeper ran: every shard notified
    assert (await audit(engine)).clean
    await client.aclose()


async def test_sweeper_and_writer_cover_every_shard(cluster_engine: Engine, tmp_path: Path) -> None:
    engine = Engine(cluster_engine.redis, EngineConfig(hold_ttl_ms=200))
    for e in EVENTS:
        await engine.arm_event(e, [CategorySpec(id="a", name="A", price=1, total=100)])
    confirmed = []
    for i in range(120):
        order = (await engine.hold(EVENTS[i % len(EVENTS)], f"u{i}", [("a", 1)])).order
        if i % 2:
            res = await engine.confirm(
                order.id, order.user_id, payment_method="c", transaction_id=f"t{i}"
            )
            confirmed.append(res.order.id)
    await asyncio.sleep(0.3)
    sweeper = Sweeper(engine)
    assert await sweeper.sweep_once() == 60
    store = AsyncStore(SQLiteStore(tmp_path / "store.db"))
    writer = OrderWriter(engine.redis, store, consumer_name="cluster-test", block_ms=0)
    await writer.run_until_idle(within_s=30)
    for order_id in confirmed:
        stored = await store.get_order(order_id)
        assert stored is not None and stored.status == "CONFIRMED"
    orders, total = await store.list_orders(1, 500)
    assert total == 120
    assert Counter(o.status for o in orders) == {"CONFIRMED": 60, "EXPIRED": 60}
    assert (await writer.lag()).unacked == 0
    await store.close()


def test_api_and_websocket_on_cluster(
    cluster: LocalCluster, api_factory: Callable[..., ApiServer]
) -> None:
    api = api_factory(redis=cluster)
    org, _ = register(api, "cluster-org@example.com", role="ORGANIZADOR")
    buyer, user = register(api, "cluster-buyer@example.com")
    events = [create_event(api, org, [("A", 10.0, 30)], nombre=f"C{i}") for i in range(4)]

    async def scenario() -> list[dict]:
        url = api.url.replace("http://", "ws://") + f"/ws?token={buyer}"
        async with websockets.connect(url) as ws:
            for ev in events:
                await ws.send(json.dumps({"event": "join:event", "data": {"eventId": ev["id"]}}))
            await ws.send(json.dumps({"event": "join:user", "data": {"userId": user["id"]}}))
            await asyncio.sleep(1.5)
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
                for ev in events:
                    r = await http.post(
                        "/api/orders",
                        headers={"Authorization": f"Bearer {buyer}"},
                        json={
                            "eventoId": ev["id"],
                            "tickets": [{"categoriaId": ev["categorias"][0]["id"], "cantidad": 2}],
                        },
                    )
                    assert r.status_code == 201, r.text
            frames: list[dict] = []
            async with asyncio.timeout(10):
                while True:
                    frames.append(json.loads(await ws.recv()))
                    live = {
                        f["data"]["eventoId"]
                        for f in frames
                        if f["event"] == "ticket:stock-update" and f["data"]["nuevoStock"] == 28
                    }
                    changes = [f for f in frames if f["event"] == "order:status-change"]
                    if len(live) == 4 and len(changes) == 4:
                        return frames

    asyncio.run(scenario())
    assert_audit_clean(api)


async def test_primary_failover_during_a_rush(tmp_path: Path) -> None:
    """SIGKILL a primary mid-rush: its replica takes over, the engine follows, audit clean.

    Replication is asynchronous, so acknowledged writes of the last moments before the
    kill may be lost with the primary; a script's effects replicate as one MULTI/EXEC, so
    whatever survives is whole, and the counters stay consistent with the orders."""
    with LocalCluster(tmp_path / "c", node_timeout_ms=1000) as cluster:
        client = RedisCluster.from_url(
            cluster.url, retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 10)
        )
        await client.initialize()
        engine = Engine(client, EngineConfig(hold_ttl_ms=600_000))
        await engine.start()
        for e in EVENTS:
            await engine.arm_event(e, [CategorySpec(id="a", name="A", price=1, total=5000)])
        await client.execute_command("WAIT", 1, 2000, target_nodes=client.get_primaries())
        stats = Counter()

        async def rush(n: int) -> None:
            for i in range(n):
                try:
                    await engine.hold(EVENTS[i % len(EVENTS)], f"u{i}", [("a", 1)])
                    stats["ok"] += 1
                except (RedisError, OSError):
                    stats["error"] += 1
                    await asyncio.sleep(0.05)

        victim = cluster.primary_nodes()[0]
        rushing = asyncio.gather(*(rush(150) for _ in range(8)))
        await asyncio.sleep(0.3)
        victim.kill()
        await rushing
        cluster.wait_ok(30)
        await client.nodes_manager.initialize()
        after = await asyncio.gather(*(engine.hold(e, "after", [("a", 1)]) for e in EVENTS))
        assert all(r.created for r in after)
        report = await audit(engine)
        assert report.clean, report.violations
        assert stats["ok"] > 0
        await client.aclose()
