"""The live on-sale page (``GET /``) in a real browser against real API processes.

Other clients move stock through the REST API while the page watches the /ws feed: the
bars follow, a buyer holds / confirms / cancels with a live status, the organizer's sales
view matches the API, and screenshots land in ``var/screenshots/``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS, missing_browser
from tests.integration.conftest import ApiServer, create_event, register

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

PASSWORD = "Secret123"  # tests.integration.conftest.register's password


def email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hold(api: ApiServer, token: str, event_id: str, *tickets: tuple[str, int]) -> dict[str, Any]:
    r = httpx.post(
        f"{api.url}/api/orders",
        headers=bearer(token),
        json={
            "eventoId": event_id,
            "tickets": [{"categoriaId": c, "cantidad": n} for c, n in tickets],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def order_action(api: ApiServer, token: str, order_id: str, action: str) -> dict[str, Any]:
    body = (
        {"metodoPago": "card", "transactionId": f"tx-{uuid.uuid4().hex[:12]}"}
        if action == "confirm"
        else None
    )
    r = httpx.put(f"{api.url}/api/orders/{order_id}/{action}", headers=bearer(token), json=body)
    assert r.status_code == 200, r.text
    return r.json()


def stock_of(api: ApiServer, event_id: str) -> dict[str, int]:
    r = httpx.get(f"{api.url}/api/events/{event_id}")
    assert r.status_code == 200, r.text
    return {c["id"]: c["disponible"] for c in r.json()["categorias"]}


def login(page: Any, address: str, password: str) -> None:
    page.fill("#login-email", address)
    page.fill("#login-password", password)
    page.click("#login-btn")
    page.locator("#who").wait_for(state="visible")


def eventually(page: Any, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``check`` (pumping the browser's events) until it returns truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        page.wait_for_timeout(100)


def bar(page: Any, cat_id: str, event_id: str | None = None) -> Any:
    scope = f'[data-event="{event_id}"] ' if event_id else "#event-cats "
    return page.locator(f'{scope}.cat[data-cat="{cat_id}"]')


class WsProxy:
    """Routes the page's /ws through the test: records frames, drops the connection, and
    can hold a new connection back from the server until :meth:`release`."""

    def __init__(self) -> None:
        self.connections: list[dict[str, Any]] = []
        self.from_page: list[dict[str, Any]] = []
        self.from_server: list[dict[str, Any]] = []
        self.paused = False

    def handle(self, route: Any) -> None:
        conn: dict[str, Any] = {"route": route, "server": None, "pending": []}
        self.connections.append(conn)

        def page_sent(message: str | bytes) -> None:
            self.from_page.append(json.loads(message))
            if conn["server"] is None:
                conn["pending"].append(message)
            else:
                conn["server"].send(message)

        route.on_message(page_sent)
        if not self.paused:
            self._attach(conn)

    def _attach(self, conn: dict[str, Any]) -> None:
        server = conn["route"].connect_to_server()

        def server_sent(message: str | bytes) -> None:
            self.from_server.append(json.loads(message))
            conn["route"].send(message)

        server.on_message(server_sent)
        conn["server"] = server
        for message in conn["pending"]:
            server.send(message)
        conn["pending"].clear()

    def drop(self) -> None:
        self.connections[-1]["route"].close(code=1012, reason="test drops the connection")

    def release(self) -> None:
        self.paused = False
        for conn in self.connections:
            if conn["server"] is None:
                self._attach(conn)


# -- (1) live stock ----------------------------------------------------------------------


def test_list_shows_stock_moving_live_and_resumes_after_reconnect(
    api: ApiServer, page: Any
) -> None:
    from playwright.sync_api import expect

    org = api.tokens["ORGANIZADOR"]
    event = create_event(
        api,
        org,
        [("Pista", 40.0, 50), ("Palco", 120.0, 4)],
        nombre="Live Stock Night",
        fecha="2026-12-05T20:00:00Z",
    )
    eid = event["id"]
    pista, palco = (c["id"] for c in event["categorias"])
    other, _ = register(api, email("other"))

    proxy = WsProxy()
    page.route_web_socket(re.compile(r"/ws$"), proxy.handle)
    page.goto(f"{api.url}/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(bar(page, pista, eid)).to_have_attribute("data-available", "50")
    expect(bar(page, pista, eid).locator(".cat-count")).to_have_text("50 of 50 left")

    # Another client holds through the REST API: the bar moves, no reload.
    page.evaluate("window.__sameDocument = true")
    order = hold(api, other, eid, (pista, 3))
    expect(bar(page, pista, eid)).to_have_attribute("data-available", "47")
    expect(bar(page, pista, eid).locator(".cat-count")).to_have_text("47 of 50 left")
    fill = bar(page, pista, eid).locator(".bar-fill")
    expect(fill).to_have_attribute("style", re.compile(r"scaleX\(0\.94\)"))

    # Every ticket held shows as none left *now* (held tickets come back), not sold out,
    # and a release brings it back.
    all_held = hold(api, other, eid, (palco, 4))
    expect(bar(page, palco, eid)).to_have_attribute("data-status", "taken")
    expect(bar(page, palco, eid).locator(".cat-badge")).to_have_text("None left now")
    expect(bar(page, palco, eid)).not_to_have_class(re.compile(r"\bsoldout\b"))
    order_action(api, other, all_held["id"], "cancel")
    expect(bar(page, palco, eid)).to_have_attribute("data-available", "4")
    expect(bar(page, palco, eid)).to_have_attribute("data-status", "open")

    # The connection drops; stock moves while the page is away; the new connection is
    # held back until then, so what the page shows next can only come from the replay.
    joins_before = len(proxy.from_page)
    proxy.paused = True
    proxy.drop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "down")
    eventually(page, lambda: len(proxy.connections) == 2)
    order_action(api, other, order["id"], "cancel")  # pista back to 50
    hold(api, other, eid, (pista, 5))  # pista 45
    proxy.release()
    expect(bar(page, pista, eid)).to_have_attribute("data-available", "45")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"

    rejoin = [
        m
        for m in proxy.from_page[joins_before:]
        if m["event"] == "join:event" and m["data"]["eventId"] == eid
    ]
    assert rejoin and "since" in rejoin[0]["data"], proxy.from_page[joins_before:]
    ack = eventually(
        page,
        lambda: next(
            (
                m
                for m in reversed(proxy.from_server)
                if m["event"] == "joined" and m["data"].get("eventId") == eid
            ),
            None,
        ),
    )
    assert ack["data"]["snapshot"] is False and ack["data"]["replayed"] >= 2, ack
    assert stock_of(api, eid)[pista] == 45


# -- (2) buyer flow ----------------------------------------------------------------------


def test_a_re_render_keeps_the_input_a_buyer_is_typing_into(api: ApiServer, page: Any) -> None:
    """Sign-in renders the event page twice (at once, then when the event is fetched). The
    second render used to replace the quantity inputs, so a buyer typing in between lost the
    focus and the keystrokes: the cause of a flaky hold test. A re-render of the same event
    with the same categories now keeps the inputs, focused and with what was typed."""
    from playwright.sync_api import expect

    event = create_event(api, api.tokens["ORGANIZADOR"], [("General", 30.0, 100)], nombre="Typing")
    general = event["categorias"][0]["id"]
    address = email("typist")
    register(api, address)
    page.goto(f"{api.url}/#/events/{event['id']}")
    login(page, address, PASSWORD)
    expect(page.locator("#hold-btn")).to_be_enabled()
    qty = bar(page, general).locator("input.qty")
    qty.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    # A re-render between two keystrokes, as a sign-in's or a feed refresh's fetch lands.
    page.evaluate("window.dispatchEvent(new HashChangeEvent('hashchange'))")
    expect(page.locator("#event-name")).to_have_text("Typing")
    page.keyboard.type("1")
    expect(qty).to_have_value("31")
    expect(qty).to_be_focused()
    expect(page.locator("#hold-total")).to_have_text(re.compile(r"^31 tickets"))


def test_buyer_holds_sees_countdown_confirms_and_follows_status_live(
    api: ApiServer, page: Any
) -> None:
    from playwright.sync_api import expect

    org = api.tokens["ORGANIZADOR"]
    event = create_event(
        api, org, [("General", 30.0, 100), ("VIP", 90.0, 3)], nombre="Buyer Flow Gala"
    )
    eid = event["id"]
    general, vip = (c["id"] for c in event["categorias"])
    address = email("buyer")
    token, _ = register(api, address)

    page.goto(f"{api.url}/#/events/{eid}")
    expect(page.locator("#event-name")).to_have_text("Buyer Flow Gala")
    expect(page.locator("#hold-hint")).to_have_text("Sign in to hold tickets.")
    expect(page.locator("#hold-btn")).to_be_disabled()

    login(page, address, PASSWORD)
    expect(page.locator("#hold-btn")).to_be_enabled()

    # A refusal shows the problem's detail inline, naming the category.
    bar(page, vip).locator("input.qty").fill("5")
    page.click("#hold-btn")
    expect(page.locator("#hold-error")).to_be_visible()
    expect(page.locator("#hold-error")).to_contain_text("VIP")
    assert stock_of(api, eid)[vip] == 3

    # Hold -> countdown -> confirm in the page.
    bar(page, vip).locator("input.qty").fill("0")
    bar(page, general).locator("input.qty").fill("2")
    expect(page.locator("#hold-total")).to_have_text(re.compile(r"^2 tickets · €60\.00$"))
    page.click("#hold-btn")
    panel = page.locator("#order-panel")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#order-status")).to_have_text("Held")
    expect(page.locator("#hold-error")).to_be_hidden()
    countdown = page.locator("#order-countdown")
    expect(countdown).to_have_text(re.compile(r"^(09:[0-5]\d|10:00) left to confirm$"))
    first = countdown.text_content()
    page.wait_for_timeout(2100)
    assert countdown.text_content() != first, "the countdown does not tick"
    expect(bar(page, general)).to_have_attribute("data-available", "98")
    first_order = panel.get_attribute("data-order")

    page.select_option("#pay-method", "paypal")
    page.click("#confirm-btn")
    expect(panel).to_have_attribute("data-estado", "CONFIRMED")
    expect(page.locator("#order-status")).to_have_text("Confirmed")
    expect(page.locator("#confirm-form")).to_be_hidden()
    stored = httpx.get(f"{api.url}/api/orders/{first_order}", headers=bearer(token)).json()
    assert stored["estado"] == "CONFIRMED"
    assert stored["metodoPago"] == "paypal"
    assert stored["transactionId"].startswith("web-")
    assert stored["tickets"] == [
        {"categoriaId": general, "nombre": "General", "cantidad": 2, "precioUnitario": 30.0}
    ]

    # A hold confirmed elsewhere (another tab, the API): the status changes live.
    bar(page, general).locator("input.qty").fill("1")
    page.click("#hold-btn")
    expect(panel).not_to_have_attribute("data-order", first_order or "")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    second_order = panel.get_attribute("data-order")
    assert second_order
    order_action(api, token, second_order, "confirm")
    expect(panel).to_have_attribute("data-estado", "CONFIRMED")
    expect(page.locator("#order-status")).to_have_text("Confirmed")

    # Cancel in the page: the tickets go straight back.
    bar(page, general).locator("input.qty").fill("4")
    page.click("#hold-btn")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    expect(bar(page, general)).to_have_attribute("data-available", "93")
    page.click("#cancel-btn")
    expect(panel).to_have_attribute("data-estado", "CANCELLED")
    expect(bar(page, general)).to_have_attribute("data-available", "97")
    assert stock_of(api, eid)[general] == 97


def test_an_expired_hold_shows_as_expired_live(
    api_factory: Callable[..., ApiServer], page: Any
) -> None:
    from playwright.sync_api import expect

    server = api_factory(ORDER_RESERVATION_TIMEOUT_MINUTES="0.05")  # 3 s holds
    org, _ = register(server, email("exp-org"), role="ORGANIZADOR")
    address = email("exp-buyer")
    register(server, address)
    event = create_event(server, org, [("Pit", 25.0, 10)], nombre="Short Hold Show")
    pit = event["categorias"][0]["id"]

    page.goto(f"{server.url}/#/events/{event['id']}")
    login(page, address, PASSWORD)
    bar(page, pit).locator("input.qty").fill("2")
    page.click("#hold-btn")
    panel = page.locator("#order-panel")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#order-countdown")).to_have_text(re.compile(r"^00:0\d left"))
    expect(page.locator("#order-countdown")).to_have_class(re.compile(r"\burgent\b"))
    expect(bar(page, pit)).to_have_attribute("data-available", "8")
    expect(panel).to_have_attribute("data-estado", "EXPIRED", timeout=20_000)
    expect(page.locator("#order-status")).to_have_text("Expired")
    expect(bar(page, pit)).to_have_attribute("data-available", "10")


# -- (3) organizer sales -----------------------------------------------------------------


def sales_on_page(page: Any) -> dict[str, Any]:
    """The sales table as numbers: {categoriaId | "total": (total, sold, held, avail, rev)}."""
    rows = page.evaluate(
        """() => [...document.querySelectorAll('#sales-rows tr, #sales-totals tr')].map(tr => ({
            id: tr.dataset.cat || 'total',
            cells: [...tr.querySelectorAll('td.num')].map(td => td.textContent),
        }))"""
    )
    out = {}
    for row in rows:
        ints = [int(re.sub(r"[^\d]", "", c) or -1) for c in row["cells"][:4]]
        revenue = float(re.sub(r"[^\d.]", "", row["cells"][4]) or -1)
        out[row["id"]] = (*ints, revenue)
    return out


def sales_from_api(api: ApiServer, token: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/admin/events/{event_id}/sales", headers=bearer(token))
    assert r.status_code == 200, r.text
    s = r.json()
    out = {
        c["categoriaId"]: (
            c["total"],
            c["vendidos"],
            c["retenidos"],
            c["disponibles"],
            c["ingresos"],
        )
        for c in s["categorias"]
    }
    out["total"] = (s["total"], s["vendidos"], s["retenidos"], s["disponibles"], s["ingresos"])
    return out


def matches_api(page: Any, api: ApiServer, token: str, event_id: str) -> bool:
    return sales_on_page(page) == sales_from_api(api, token, event_id)


def test_organizer_sales_view_matches_the_api_and_follows_sales(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    org = api.tokens["ORGANIZADOR"]
    event = create_event(
        api, org, [("Floor", 55.5, 40), ("Seats", 20.0, 60)], nombre="Sales Board Live"
    )
    eid = event["id"]
    floor, seats = (c["id"] for c in event["categorias"])
    buyer, _ = register(api, email("sales-buyer"))
    held = hold(api, buyer, eid, (floor, 3))
    order_action(api, buyer, hold(api, buyer, eid, (seats, 5), (floor, 1))["id"], "confirm")

    page.goto(f"{api.url}/#/events/{eid}/sales")
    expect(page.locator("#sales-error")).to_contain_text("Sign in as the event's organizer")

    login(page, "organizador@test.com", "Org123!")
    expect(page.locator("#sales-name")).to_have_text("Sales · Sales Board Live")
    eventually(page, lambda: matches_api(page, api, org, eid))
    assert sales_on_page(page)["total"] == (100, 6, 3, 91, 155.5)

    # A hold elsewhere moves stock: the view refreshes from the stock frame.
    hold(api, buyer, eid, (seats, 7))
    eventually(page, lambda: sales_on_page(page)[seats][2] == 7)
    assert matches_api(page, api, org, eid)

    # A confirmation moves held to sold without a stock frame: the slow poll catches it.
    order_action(api, buyer, held["id"], "confirm")
    eventually(page, lambda: sales_on_page(page)[floor][1] == 4, timeout=12)
    assert matches_api(page, api, org, eid)

    # The event page links to the view for its organizer only.
    page.goto(f"{api.url}/#/events/{eid}")
    expect(page.locator("#sales-link")).to_be_visible()
    page.click("#sales-link")
    expect(page.locator("#view-sales")).to_be_visible()

    # Anyone else gets the API's refusal inline.
    page.click("#logout")
    nosy = email("nosy")
    register(api, nosy)
    login(page, nosy, PASSWORD)
    page.goto(f"{api.url}/#/events/{eid}/sales")
    expect(page.locator("#sales-error")).to_contain_text("organizer or an ADMIN")
    expect(page.locator("#sales-rows tr")).to_have_count(0)


# -- a rush ------------------------------------------------------------------------------


def test_page_stays_correct_and_responsive_during_a_rush(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    org = api.tokens["ORGANIZADOR"]
    event = create_event(
        api, org, [("Floor", 60.0, 3000), ("Balcony", 35.0, 1500)], nombre="Rush Hour"
    )
    eid = event["id"]
    cats = [c["id"] for c in event["categorias"]]
    buyers = [register(api, email("rush"))[0] for _ in range(8)]

    page.add_init_script(
        """window.__longTasks = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
        }).observe({type: 'longtask', buffered: true});"""
    )
    proxy = WsProxy()
    page.route_web_socket(re.compile(r"/ws$"), proxy.handle)
    page.goto(f"{api.url}/#/events/{eid}")
    expect(bar(page, cats[0])).to_have_attribute("data-available", "3000")
    page.wait_for_timeout(500)
    rush_start = page.evaluate("performance.now()")

    holds = 1200
    clients = [
        httpx.Client(
            base_url=api.url,
            headers=bearer(token),
            timeout=30,
            limits=httpx.Limits(max_connections=16),
        )
        for token in buyers
    ]

    def one(i: int) -> None:
        client = clients[i % len(clients)]
        r = client.post(
            "/api/orders",
            json={
                "eventoId": eid,
                "tickets": [{"categoriaId": cats[i % 2], "cantidad": 1 + i % 2}],
            },
        )
        assert r.status_code == 201, r.text
        if i % 3 == 0:
            assert client.put(f"/api/orders/{r.json()['id']}/cancel").status_code == 200

    started = time.monotonic()
    rates = []
    with ThreadPoolExecutor(max_workers=48) as pool:
        futures = [pool.submit(one, i) for i in range(holds)]
        while not all(f.done() for f in futures):
            rate = page.locator("#rate").text_content() or ""
            rates.append(int(re.sub(r"[^\d]", "", rate) or 0))
            page.wait_for_timeout(250)
        for f in futures:
            f.result()
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()

    final = stock_of(api, eid)
    for cat in cats:
        expect(bar(page, cat)).to_have_attribute("data-available", str(final[cat]))
    long_tasks = page.evaluate(f"window.__longTasks.filter(t => t[0] > {rush_start})")
    worst = max((d for _, d in long_tasks), default=0)
    frames = holds + holds // 3
    print(
        f"rush: {frames} stock changes in {elapsed:.1f}s, page saw up to "
        f"{max(rates, default=0)} updates/s; long tasks {len(long_tasks)}, worst {worst:.0f} ms"
    )
    assert worst < 500, long_tasks

    # The server conflates stock frames per category for a busy socket, so the page saw
    # fewer frames than there were changes. Flood it directly: thousands of frames as fast
    # as the test can push them into the socket.
    flood_start = page.evaluate("performance.now()")
    socket = proxy.connections[-1]["route"]
    flood = 5000
    last: dict[str, int] = {}
    started = time.monotonic()
    for i in range(flood):
        cat = cats[i % 2]
        last[cat] = (i * 7) % 1500
        socket.send(
            json.dumps(
                {
                    "event": "ticket:stock-update",
                    "data": {"eventoId": eid, "categoriaId": cat, "nuevoStock": last[cat]},
                }
            )
        )
    sent = time.monotonic() - started
    # The test's own sending (Python -> Playwright -> page) is the bottleneck here, so what
    # is checked is that the page keeps up: the last values show right after the last send.
    for cat in cats:
        expect(bar(page, cat)).to_have_attribute("data-available", str(last[cat]), timeout=5_000)
    long_tasks = page.evaluate(f"window.__longTasks.filter(t => t[0] > {flood_start})")
    worst = max((d for _, d in long_tasks), default=0)
    print(
        f"flood: {flood} frames pushed in {sent:.1f}s ({flood / sent:.0f}/s), all applied; "
        f"long tasks {len(long_tasks)}, worst {worst:.0f} ms"
    )
    assert worst < 500, long_tasks
    # The page still answers promptly once the rush is over.
    t0 = time.monotonic()
    page.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")
    assert time.monotonic() - t0 < 2.0


# -- (4) screenshots ---------------------------------------------------------------------


def test_screenshots(api_factory: Callable[..., ApiServer], page: Any) -> None:
    from playwright.sync_api import expect

    server = api_factory()
    org_address = email("show-org")
    org, _ = register(server, org_address, role="ORGANIZADOR")
    buyer_address = email("show-buyer")
    buyer, _ = register(server, buyer_address)
    showcase = [
        ("Midnight Orchestra", "2026-12-12T21:00:00Z", "Teatro Real, Madrid",
         [("Stalls", 85.0, 120, 96), ("Circle", 60.0, 80, 31), ("Boxes", 140.0, 12, 12)]),
        ("Indie Summer Fest", "2027-07-03T16:00:00Z", "Parque del Forum, Barcelona",
         [("Weekend pass", 120.0, 400, 170), ("Day ticket", 55.0, 300, 44)]),
        ("Tech Summit 2027", "2027-03-10T09:00:00Z", "IFEMA, Madrid",
         [("Premium", 450.0, 60, 56), ("Standard", 190.0, 250, 90), ("Student", 40.0, 100, 20)]),
    ]  # fmt: skip
    events = []
    for name, date, place, cats in showcase:
        event = create_event(
            server,
            org,
            [(n, p, t) for n, p, t, _ in cats],
            nombre=name,
            fecha=date,
            ubicacion=place,
        )
        events.append(event)
        for (_, _, _, taken), cat in zip(cats, event["categorias"], strict=True):
            while taken > 0:
                n = min(10, taken)
                order = hold(server, buyer, event["id"], (cat["id"], n))
                if taken % 3:
                    order_action(server, buyer, order["id"], "confirm")
                taken -= n

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server.url}/")
    expect(page.locator(".card")).to_have_count(3)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    page.wait_for_timeout(400)  # let the bars finish their transition
    page.screenshot(path=str(SCREENSHOTS / "live-events.png"), full_page=True)

    festival = events[1]
    page.goto(f"{server.url}/#/events/{festival['id']}")
    login(page, buyer_address, PASSWORD)
    bar(page, festival["categorias"][0]["id"]).locator("input.qty").fill("2")
    page.click("#hold-btn")
    expect(page.locator("#order-panel")).to_have_attribute("data-estado", "RESERVED")
    page.wait_for_timeout(400)
    page.screenshot(path=str(SCREENSHOTS / "event-hold.png"), full_page=True)

    page.click("#logout")
    login(page, org_address, PASSWORD)
    page.goto(f"{server.url}/#/events/{festival['id']}/sales")
    expect(page.locator("#sales-rows tr")).to_have_count(2)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "sales.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/#/")
    expect(page.locator(".card")).to_have_count(3)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SCREENSHOTS / "live-events-mobile.png"), full_page=True)

    for name in ("live-events.png", "event-hold.png", "sales.png", "live-events-mobile.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name
