"""Whole journeys through the live page (``GET /``) in Chromium against real API processes.

A visitor signs up, buys, confirms and finds the order in *My orders* (live); an organizer
signs up, creates an event with two categories, edits a price and watches it sell while the
test moves stock through the API; an admin sees every event and the stats; "all held, may
come back" is told apart from "sold out" and a page with nothing to buy says why; a phone
brings Confirm into view after a hold; the header's wording follows the feed; a second
viewer sees categories added, changed and removed live. Every step
leaves a screenshot in ``var/screenshots/journey-*.png``; the ``page`` fixture fails a test
on any console error or page error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS, missing_browser, open_page
from tests.browser.test_page import (
    PASSWORD,
    WsProxy,
    bar,
    bearer,
    email,
    eventually,
    hold,
    login,
    order_action,
)
from tests.integration.conftest import ApiServer, create_event, register

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(250)  # let bars and scrolling settle
    path = SCREENSHOTS / f"journey-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, path


def token_of(page: Any) -> str:
    return json.loads(page.evaluate("sessionStorage.getItem('onsale.auth')"))["token"]


def get_event(api: ApiServer, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/events/{event_id}")
    assert r.status_code == 200, r.text
    return r.json()


def order_card(page: Any, order_id: str) -> Any:
    return page.locator(f'#orders-list .order-card[data-order="{order_id}"]')


# -- a visitor, end to end ----------------------------------------------------------------------


def test_visitor_signs_up_buys_confirms_and_sees_it_in_my_orders(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    event = create_event(
        api,
        api.tokens["ORGANIZADOR"],
        [("General", 30.0, 100), ("VIP", 90.0, 10)],
        nombre="Harbour Lights",
        descripcion="An evening of light and sound by the water.",
        ubicacion="Port Vell, Barcelona",
    )
    eid = event["id"]
    general, vip = (c["id"] for c in event["categorias"])
    r = httpx.put(
        f"{api.url}/api/events/{eid}/categories/{vip}",
        headers=bearer(api.tokens["ORGANIZADOR"]),
        json={"beneficios": ["Backstage access", "Free drink"]},
    )
    assert r.status_code == 200, r.text

    # The event page: description, date and place, benefits; signed out, it says why.
    page.goto(f"{api.url}/#/events/{eid}")
    expect(page.locator("#event-name")).to_have_text("Harbour Lights")
    expect(page.locator("#event-desc")).to_have_text("An evening of light and sound by the water.")
    expect(page.locator("#event-meta")).to_contain_text("Port Vell, Barcelona")
    expect(bar(page, vip).locator(".cat-perks li")).to_have_text(["Backstage access", "Free drink"])
    expect(page.locator("#hold-btn")).to_be_disabled()
    expect(page.locator("#hold-hint")).to_have_text("Sign in to hold tickets.")
    shot(page, "01-event-signed-out")

    # Sign up from the event page: the API's rules and messages, next to the fields.
    page.locator("#hold-signup a").click()
    expect(page.locator("#view-signup")).to_be_visible()
    form = page.locator("#signup-form")
    address = email("visitor")
    form.get_by_label("Name").fill("Vera Visitor")
    form.get_by_label("E-mail").fill("not-an-email")
    form.get_by_label("Password").fill("short")
    page.click("#signup-btn")
    expect(page.locator("#su-email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#su-email-error")).to_have_text("email must be a valid e-mail address")
    expect(page.locator("#su-password-error")).to_have_text(
        "password must be at least 8 characters with letters and digits"
    )
    shot(page, "02-signup-errors")
    form.get_by_label("E-mail").fill("comprador@test.com")  # taken: the API's 409
    form.get_by_label("Password").fill(PASSWORD)
    page.click("#signup-btn")
    expect(page.locator("#signup-error")).to_have_text("e-mail already registered")
    expect(page.locator("#su-password")).not_to_have_attribute("aria-invalid", "true")
    form.get_by_label("E-mail").fill(address)
    page.click("#signup-btn")

    # Back on the event page, signed in as a buyer.
    expect(page.locator("#who-name")).to_have_text("Vera Visitor")
    expect(page.locator("#who-role")).to_have_text("buyer")
    expect(page).to_have_url(re.compile(rf"#/events/{eid}$"))
    expect(page.locator("#hold-btn")).to_be_enabled()

    # Hold with the keyboard only: type a quantity, Enter submits the form.
    qty = bar(page, vip).locator("input.qty")
    qty.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    expect(page.locator("#hold-total")).to_have_text(re.compile(r"^2 tickets · €180\.00$"))
    page.keyboard.press("Enter")
    panel = page.locator("#order-panel")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#order-heading")).to_be_focused()
    expect(page.locator("#confirm-btn")).to_be_in_viewport()
    shot(page, "03-held")
    first = panel.get_attribute("data-order")
    page.click("#confirm-btn")
    expect(panel).to_have_attribute("data-estado", "CONFIRMED")
    shot(page, "04-confirmed")

    # A second hold, left open, then My orders: both, with their state.
    page.locator("#hold-error").wait_for(state="hidden")
    bar(page, general).locator("input.qty").fill("1")
    page.click("#hold-btn")
    expect(panel).not_to_have_attribute("data-order", first or "")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    second = panel.get_attribute("data-order")
    page.get_by_role("link", name="My orders").first.click()
    expect(page.locator("#view-orders")).to_be_visible()
    expect(order_card(page, first)).to_have_attribute("data-estado", "CONFIRMED")
    expect(order_card(page, first).locator(".o-status")).to_have_text("Confirmed")
    expect(order_card(page, first).locator(".o-event")).to_have_text("Harbour Lights")
    expect(order_card(page, first).locator(".o-count")).to_have_text("2 tickets")
    row = order_card(page, second)
    expect(row).to_have_attribute("data-estado", "RESERVED")
    expect(row.locator(".o-countdown")).to_have_text(
        re.compile(r"^(09:[0-5]\d|10:00) left to confirm$")
    )
    expect(row.locator(".o-count")).to_have_text("1 ticket")
    shot(page, "05-my-orders")

    # Cancel from the list; the stock goes back.
    row.locator(".o-cancel").click()
    expect(row).to_have_attribute("data-estado", "CANCELLED")
    assert get_event(api, eid)["categorias"][0]["disponible"] == 100

    # A hold confirmed elsewhere (another tab, the API) turns Confirmed in the list, live.
    token = token_of(page)
    third = hold(api, token, eid, (general, 3))
    page.goto(f"{api.url}/#/")
    page.goto(f"{api.url}/#/orders")
    expect(order_card(page, third["id"])).to_have_attribute("data-estado", "RESERVED")
    order_action(api, token, third["id"], "confirm")
    expect(order_card(page, third["id"])).to_have_attribute("data-estado", "CONFIRMED")

    # ... and confirm from the list works too.
    fourth = hold(api, token, eid, (general, 1))
    page.goto(f"{api.url}/#/")
    page.goto(f"{api.url}/#/orders")
    row = order_card(page, fourth["id"])
    row.locator(".o-pay").select_option("bank_transfer")
    row.locator(".o-confirm").click()
    expect(row).to_have_attribute("data-estado", "CONFIRMED")
    stored = httpx.get(f"{api.url}/api/orders/{fourth['id']}", headers=bearer(token)).json()
    assert stored["estado"] == "CONFIRMED" and stored["metodoPago"] == "bank_transfer"
    shot(page, "06-my-orders-live")

    # Sign out: My orders is gone from the header.
    page.click("#logout")
    expect(page.locator("#nav-orders")).to_be_hidden()
    expect(page.locator("#login-form")).to_be_visible()


# -- an organizer, then an admin ----------------------------------------------------------------


def test_organizer_creates_an_event_edits_a_price_and_watches_it_sell(
    api: ApiServer, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{api.url}/#/signup")
    form = page.locator("#signup-form")
    form.get_by_label("Name").fill("Olga Organizer")
    address = email("olga")
    form.get_by_label("E-mail").fill(address)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_label("sell tickets for my events (organizer)").check()
    page.click("#signup-btn")
    expect(page.locator("#view-organizer")).to_be_visible()
    expect(page.locator("#who-role")).to_have_text("organizer")
    expect(page.locator("#org-events")).to_contain_text("No events yet")
    page.click("#org-new")
    expect(page.locator("#view-editor")).to_be_visible()
    editor = page.locator("#event-form")

    editor.get_by_label("Event name").fill("Riverside Jazz")
    editor.get_by_label("Description").fill("Three bands on the river bank.")
    editor.get_by_label("Date and time").fill("2027-09-18T19:30")
    editor.get_by_label("Place").fill("Madrid Río")
    editor.get_by_label("Capacity").fill("100")
    editor.get_by_label("Base price (€)").fill("20")
    rows = page.locator("#new-cat-rows .cat-edit")
    first = rows.nth(0)
    first.get_by_label("Name").fill("Lawn")
    first.get_by_label("Price (€)").fill("25")
    first.get_by_label("Tickets").fill("80")
    page.click("#add-new-cat")
    second = rows.nth(1)
    second.get_by_label("Name").fill("Front row")
    second.get_by_label("Price (€)").fill("60")
    second.get_by_label("Tickets").fill("40")  # 80 + 40 > 100: the API refuses
    second.get_by_label("Benefits, one a line").fill("Reserved seat\nMeet the band")
    page.click("#event-save")
    expect(page.locator("#event-form-error")).to_contain_text("more than capacidadTotal 100")
    expect(page.locator("#ev-cap")).to_have_attribute("aria-invalid", "true")
    shot(page, "11-editor-refusal")
    second.get_by_label("Tickets").fill("20")
    page.click("#event-save")
    expect(page.locator("#event-saved")).to_have_text("Created “Riverside Jazz” with 2 categories.")
    expect(page).to_have_url(re.compile(r"#/events/[A-Za-z0-9_-]+/edit$"))
    eid = re.search(r"#/events/([A-Za-z0-9_-]+)/edit$", page.url).group(1)  # type: ignore[union-attr]
    created = get_event(api, eid)
    assert created["descripcion"] == "Three bands on the river bank."
    assert created["fecha"].startswith("2027-09-18T19:30")  # the browser runs in UTC
    assert [(c["nombre"], c["precio"], c["cantidadTotal"]) for c in created["categorias"]] == [
        ("Lawn", 25.0, 80),
        ("Front row", 60.0, 20),
    ]
    assert created["categorias"][1]["beneficios"] == ["Reserved seat", "Meet the band"]
    lawn, front = (c["id"] for c in created["categorias"])
    shot(page, "12-editor-created")

    # Edit a price: the category's own form, the API's answer.
    front_form = page.locator(f'#edit-cat-rows form[data-cat="{front}"]')
    front_form.get_by_label("Price (€)").fill("65.5")
    front_form.get_by_role("button", name="Save category").click()
    expect(front_form.locator(".c-status")).to_have_text("Saved.")
    assert get_event(api, eid)["categorias"][1]["precio"] == 65.5
    # A refusal shows next to the field it names.
    front_form.get_by_label("Tickets").fill("90")
    front_form.get_by_role("button", name="Save category").click()
    expect(front_form.locator(".c-error")).to_contain_text("more than capacidadTotal")
    front_form.get_by_label("Tickets").fill("20")
    # The event's own fields.
    editor.get_by_label("Place").fill("Madrid Río, Puente del Rey")
    page.click("#event-save")
    expect(page.locator("#event-saved")).to_have_text("Saved.")
    assert get_event(api, eid)["ubicacion"] == "Madrid Río, Puente del Rey"
    shot(page, "13-editor-edited")

    # The dashboard: the event, its bars live as buyers hold through the API.
    page.click("#nav-organizer")
    card = page.locator(f'#org-events [data-event="{eid}"]')
    expect(card).to_contain_text("Riverside Jazz")
    buyer, _ = register(api, email("jazz-buyer"))
    held = hold(api, buyer, eid, (lawn, 5), (front, 2))
    expect(bar(page, lawn, eid)).to_have_attribute("data-available", "75")
    expect(bar(page, front, eid)).to_have_attribute("data-available", "18")
    shot(page, "14-dashboard-live")

    # The sales view follows the sales.
    card.locator(".oe-sales").click()
    expect(page.locator("#sales-name")).to_have_text("Sales · Riverside Jazz")
    sold = page.locator(f'#sales-rows tr[data-cat="{front}"] .s-sold')
    held_cell = page.locator(f'#sales-rows tr[data-cat="{front}"] .s-held')
    expect(held_cell).to_have_text("2")
    order_action(api, buyer, held["id"], "confirm")
    expect(sold).to_have_text("2", timeout=12_000)
    expect(page.locator(f'#sales-rows tr[data-cat="{front}"] .s-rev')).to_have_text("€131.00")
    hold(api, buyer, eid, (front, 3))
    expect(held_cell).to_have_text("3")
    shot(page, "15-sales-live")

    # An admin sees every event and the stats.
    page.click("#logout")
    login(page, "admin@test.com", "Admin123!")
    expect(page.locator("#nav-organizer")).to_have_text("Admin")
    page.click("#nav-organizer")
    expect(page.locator("#org-title")).to_have_text("All events")
    expect(page.locator(f'#org-events [data-event="{eid}"]')).to_be_visible()
    expect(page.locator("#org-events [data-event]")).not_to_have_count(1)
    stats = httpx.get(f"{api.url}/api/admin/stats", headers=bearer(api.tokens["ADMIN"])).json()
    expect(page.locator('[data-stat="eventos"] dd')).to_have_text(str(stats["eventos"]))
    expect(page.locator('[data-stat="ticketsVendidos"] dd')).to_be_visible()
    expect(page.locator('[data-stat="reservasActivas"] dd')).to_be_visible()
    shot(page, "16-admin")


# -- held is not sold out ------------------------------------------------------------------------


def test_all_held_is_told_apart_from_sold_out_and_nothing_to_buy_disables_hold(
    api: ApiServer, page: Any
) -> None:
    from playwright.sync_api import expect

    org_address = email("held-org")
    org, _ = register(api, org_address, role="ORGANIZADOR")
    event = create_event(api, org, [("Held", 40.0, 2), ("Sold", 50.0, 2)], nombre="Full House")
    eid = event["id"]
    held_cat, sold_cat = (c["id"] for c in event["categorias"])
    other, _ = register(api, email("held-other"))
    held_order = hold(api, other, eid, (held_cat, 2))
    order_action(api, other, hold(api, other, eid, (sold_cat, 2))["id"], "confirm")

    # A buyer: none left in either, held or sold is not public, so neither says sold out;
    # nothing can be bought, so Hold is disabled and the page says why.
    address = email("held-buyer")
    register(api, address)
    page.goto(f"{api.url}/#/events/{eid}")
    login(page, address, PASSWORD)
    for cat in (held_cat, sold_cat):
        expect(bar(page, cat)).to_have_attribute("data-status", "taken")
        expect(bar(page, cat).locator(".cat-badge")).to_have_text("None left now")
        expect(bar(page, cat).locator("input.qty")).to_be_disabled()
    expect(bar(page, held_cat).locator(".cat-note")).to_contain_text("come back")
    expect(page.locator("#hold-btn")).to_be_disabled()
    expect(page.locator("#hold-hint")).to_contain_text("No tickets left right now")
    expect(page.locator("#hold-hint")).not_to_contain_text("Choose how many")
    shot(page, "21-buyer-none-left")
    page.goto(f"{api.url}/#/")
    expect(page.locator(f'.card[data-event="{eid}"] .card-left')).to_have_text(
        "None left right now"
    )

    # The organizer sees the sales, so the page can tell them apart exactly.
    page.click("#logout")
    login(page, org_address, PASSWORD)
    page.goto(f"{api.url}/#/events/{eid}")
    expect(bar(page, held_cat)).to_have_attribute("data-status", "held")
    expect(bar(page, held_cat).locator(".cat-badge")).to_have_text("All held")
    expect(bar(page, held_cat).locator(".cat-note")).to_have_text(
        "All tickets are held right now. Some may come back if they are not paid in time."
    )
    expect(bar(page, sold_cat)).to_have_attribute("data-status", "soldout")
    expect(bar(page, sold_cat).locator(".cat-badge")).to_have_text("Sold out")
    expect(page.locator("#hold-btn")).to_be_disabled()
    expect(page.locator("#hold-hint")).to_contain_text("Some are held and may come back")
    shot(page, "22-organizer-held-vs-sold")

    # The hold is released: the tickets come back, live, and Hold is possible again.
    page.click("#logout")
    login(page, address, PASSWORD)
    page.goto(f"{api.url}/#/events/{eid}")
    expect(page.locator("#hold-btn")).to_be_disabled()
    order_action(api, other, held_order["id"], "cancel")
    expect(bar(page, held_cat)).to_have_attribute("data-status", "open")
    expect(bar(page, held_cat).locator("input.qty")).to_be_enabled()
    expect(bar(page, sold_cat).locator("input.qty")).to_be_disabled()
    expect(page.locator("#hold-btn")).to_be_enabled()
    expect(page.locator("#hold-hint")).to_have_text("")
    shot(page, "23-came-back")

    # Everything paid for: the organizer's page says sold out, plainly.
    order_action(api, other, hold(api, other, eid, (held_cat, 2))["id"], "confirm")
    page.click("#logout")
    login(page, org_address, PASSWORD)
    page.goto(f"{api.url}/#/events/{eid}")
    expect(bar(page, held_cat)).to_have_attribute("data-status", "soldout")
    expect(page.locator("#hold-hint")).to_have_text("Sold out: every ticket is paid for.")
    expect(page.locator("#hold-btn")).to_be_disabled()


# -- a phone ------------------------------------------------------------------------------------


def test_phone_width_brings_confirm_into_view_after_a_hold(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    event = create_event(
        api,
        api.tokens["ORGANIZADOR"],
        [("Stalls", 85.0, 120), ("Circle", 60.0, 80), ("Boxes", 140.0, 12)],
        nombre="Phone Gala",
        descripcion="A long evening, told in three parts, with an interval.",
    )
    eid = event["id"]
    boxes = event["categorias"][2]["id"]
    address = email("phone")
    register(api, address)
    page.goto(f"{api.url}/#/events/{eid}")
    login(page, address, PASSWORD)
    shot(page, "31-phone-event")
    bar(page, boxes).locator("input.qty").fill("2")
    page.click("#hold-btn")
    expect(page.locator("#order-panel")).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#confirm-btn")).to_be_in_viewport()
    expect(page.locator("#order-countdown")).to_be_in_viewport()
    assert page.evaluate("window.scrollY") > 0, "the page did not scroll to the order"
    # Nothing sticks out sideways at phone width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(SCREENSHOTS / "journey-32-phone-held.png"))  # the viewport
    page.click("#confirm-btn")
    expect(page.locator("#order-panel")).to_have_attribute("data-estado", "CONFIRMED")
    page.click("#nav-orders")
    expect(page.locator("#orders-list .order-card")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "33-phone-orders")


# -- the header's wording --------------------------------------------------------------------


def test_header_wording_follows_the_feed(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    event = create_event(api, api.tokens["ORGANIZADOR"], [("Solo", 10.0, 10)], nombre="Quiet")
    proxy = WsProxy()
    page.route_web_socket(re.compile(r"/ws$"), proxy.handle)
    page.goto(f"{api.url}/#/events/{event['id']}")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("body")).to_have_attribute("data-feed", "live")
    expect(page.locator("#brand-live")).to_have_text("live")
    page.wait_for_timeout(2200)  # the join's snapshot frame leaves the rate counter

    # One stock update in a second reads "1 update/s", not "1 updates/s".
    cat = event["categorias"][0]["id"]
    proxy.connections[-1]["route"].send(
        json.dumps(
            {
                "event": "ticket:stock-update",
                "data": {"eventoId": event["id"], "categoriaId": cat, "nuevoStock": 9},
            }
        )
    )
    expect(page.locator("#rate")).to_have_text("1 update/s")
    expect(page.locator("#rate")).to_have_text("", timeout=3_000)

    # Reconnecting: the LIVE badge is not lit while the status says so.
    proxy.paused = True
    proxy.drop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "down")
    expect(page.locator("#conn")).to_contain_text("reconnecting")
    expect(page.locator("body")).to_have_attribute("data-feed", re.compile("down|connecting"))
    expect(page.locator("#brand-live")).to_have_text("offline")
    red = page.evaluate("getComputedStyle(document.getElementById('brand-live')).backgroundColor")
    assert red != "rgb(194, 55, 47)", red
    shot(page, "41-reconnecting")
    eventually(page, lambda: len(proxy.connections) >= 2)
    proxy.release()
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    expect(page.locator("#brand-live")).to_have_text("live")
    lit = page.evaluate("getComputedStyle(document.getElementById('brand-live')).backgroundColor")
    assert lit == "rgb(194, 55, 47)", lit


# -- the on-sale protections, once the API has them ----------------------------------------------


def test_buyer_cap_waitlist_offer_and_hold_extension(
    api_factory: Callable[..., ApiServer], page: Any
) -> None:
    from playwright.sync_api import expect

    server = api_factory(ORDER_RESERVATION_TIMEOUT_MINUTES="1")  # 60 s holds: Extend shows
    caps = httpx.get(f"{server.url}/schema/openapi.json").json()
    paths = caps["paths"]
    if (
        "/api/events/{event_id}/waitlist" not in paths
        or "/api/orders/{order_id}/extend" not in paths
    ):
        pytest.skip("the API has no waitlist or hold extension yet")
    org, _ = register(server, email("cap-org"), role="ORGANIZADOR")
    event = create_event(
        server, org, [("Floor", 20.0, 10), ("Tiny", 90.0, 1)], nombre="Capped", maxPorComprador=3
    )
    eid = event["id"]
    floor, tiny = (c["id"] for c in event["categorias"])
    address = email("cap-buyer")
    register(server, address)
    other, _ = register(server, email("cap-other"))

    page.goto(f"{server.url}/#/events/{eid}")
    login(page, address, PASSWORD)
    expect(page.locator("#event-cap")).to_have_text("Up to 3 tickets per buyer for this event.")

    # Over the cap: the API's refusal, inline.
    bar(page, floor).locator("input.qty").fill("4")
    page.click("#hold-btn")
    expect(page.locator("#hold-error")).to_be_visible()
    assert httpx.get(f"{server.url}/api/events/{eid}").json()["categorias"][0]["disponible"] == 10

    # A 60 s hold: Extend shows near the end of the countdown and moves the deadline.
    bar(page, floor).locator("input.qty").fill("1")
    page.click("#hold-btn")
    expect(page.locator("#order-panel")).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#order-countdown")).to_have_text(re.compile(r"^00:[0-5]\d|01:00"))
    expect(page.locator("#extend-btn")).to_be_visible()
    page.click("#extend-btn")
    expect(page.locator("#order-countdown")).to_have_text(re.compile(r"^0[5-6]:\d\d left"))
    expect(page.locator("#extend-btn")).to_be_hidden()
    shot(page, "51-extended")

    # Tiny is all held by someone else: join its waitlist; the release is offered to us.
    taken = hold(server, other, eid, (tiny, 1))
    expect(bar(page, tiny)).to_have_attribute("data-status", "taken")
    wait = bar(page, tiny).locator(".cat-wait")
    expect(wait).to_be_visible()
    wait.get_by_role("button", name="Join the waitlist").click()
    expect(wait.locator(".wait-status")).to_contain_text("You are on the waitlist")
    shot(page, "52-waitlisted")
    order_action(server, other, taken["id"], "cancel")
    expect(page.locator("#offer-banner")).to_be_visible()
    expect(page.locator("#offer-left")).to_have_text(re.compile(r"left to confirm$"))
    panel = page.locator("#order-panel")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    expect(page.locator("#order-lines")).to_contain_text("Tiny")
    shot(page, "53-waitlist-offer")
    page.click("#confirm-btn")
    expect(panel).to_have_attribute("data-estado", "CONFIRMED")
    expect(page.locator("#offer-banner")).to_be_hidden()


def test_a_removed_category_closes_the_buyers_waitlist_live(api: ApiServer, page: Any) -> None:
    from playwright.sync_api import expect

    if "/api/events/{event_id}/waitlist" not in get_paths(api):
        pytest.skip("the API has no waitlist yet")
    org, _ = register(api, email("rm-org"), role="ORGANIZADOR")
    event = create_event(api, org, [("Floor", 20.0, 5), ("Soon", 90.0, 0)], nombre="Removal")
    eid = event["id"]
    floor, soon = (c["id"] for c in event["categorias"])
    address = email("rm-buyer")
    register(api, address)

    page.goto(f"{api.url}/#/events/{eid}")
    login(page, address, PASSWORD)
    wait = bar(page, soon).locator(".cat-wait")
    expect(wait).to_be_visible()
    wait.get_by_role("button", name="Join the waitlist").click()
    expect(wait.locator(".wait-status")).to_contain_text("You are on the waitlist")
    page.wait_for_timeout(1500)  # the hub refreshes the events its user rooms follow
    r = httpx.delete(f"{api.url}/api/events/{eid}/categories/{soon}", headers=bearer(org))
    assert r.status_code == 204, r.text
    # Told live on the buyer's channel; the category leaves the page.
    expect(page.locator("#waitlist-banner")).to_be_visible()
    expect(page.locator("#waitlist-text")).to_have_text(
        "The organizer removed Soon from Removal: you are no longer on its waitlist."
    )
    expect(bar(page, soon)).to_have_count(0)
    expect(bar(page, floor)).to_be_visible()
    shot(page, "54-waitlist-closed")
    page.click("#waitlist-dismiss")
    expect(page.locator("#waitlist-banner")).to_be_hidden()


# -- categories changed under a viewer ------------------------------------------------------------


def test_a_second_viewer_sees_categories_added_changed_and_removed_live(
    api: ApiServer, page: Any, browser: Any
) -> None:
    """The organizer adds, renames, reprices, resizes and removes categories (the REST
    API, as the editor sends them) while a buyer has the event page open and a visitor the
    list: both follow every change from the feed's event:update frames, in the same
    document, without reading the event again, and the buyer's typed quantity stays."""
    from playwright.sync_api import expect

    org, _ = register(api, email("live-cats-org"), role="ORGANIZADOR")
    soon = (datetime.now(UTC) + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = create_event(
        api,
        org,
        [("Pista", 30.0, 40), ("Grada", 20.0, 30)],
        capacity=200,
        nombre="Live Categories",
        fecha=soon,
    )
    eid = event["id"]
    pista, grada = (c["id"] for c in event["categorias"])
    base = f"{api.url}/api/events/{eid}/categories"
    address = email("live-cats-buyer")
    register(api, address)

    page.goto(f"{api.url}/#/events/{eid}")
    login(page, address, PASSWORD)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    qty = bar(page, pista).locator("input.qty")
    qty.fill("2")
    expect(page.locator("#hold-total")).to_have_text("2 tickets · €60.00")
    visitor, problems = open_page(browser)
    try:
        visitor.goto(f"{api.url}/")
        expect(visitor.locator("#conn")).to_have_attribute("data-state", "live")
        expect(bar(visitor, grada, eid)).to_be_visible()
        reads: list[str] = []  # the event read again by either page from here on

        def note_read(request: Any) -> None:
            if re.search(rf"/api/events/{eid}$", request.url):
                reads.append(request.url)

        for p in (page, visitor):
            p.evaluate("window.__sameDocument = true")
            p.on("request", note_read)

        # Added: a new row on both pages, with its name, price, stock and benefits.
        r = httpx.post(
            base,
            json={"nombre": "Palco VIP", "precio": 95, "cantidadTotal": 10, "beneficios": ["Bar"]},
            headers=bearer(org),
        )
        assert r.status_code == 201, r.text
        palco = r.json()["id"]
        row = bar(page, palco)
        expect(row.locator(".cat-name")).to_have_text("Palco VIP")
        expect(row.locator(".cat-price")).to_have_text("€95.00")
        expect(row.locator(".cat-count")).to_have_text("10 of 10 left")
        expect(row.locator(".cat-perks li")).to_have_text(["Bar"])
        expect(page.locator("#event-cats .cat")).to_have_count(3)
        expect(bar(visitor, palco, eid).locator(".cat-name")).to_have_text("Palco VIP")
        expect(qty).to_have_value("2")

        # Renamed and repriced: the row, the list card and the hold's total follow.
        r = httpx.put(
            f"{base}/{pista}", json={"nombre": "Pista Central", "precio": 35}, headers=bearer(org)
        )
        assert r.status_code == 200, r.text
        expect(bar(page, pista).locator(".cat-name")).to_have_text("Pista Central")
        expect(bar(page, pista).locator(".cat-price")).to_have_text("€35.00")
        expect(page.locator("#hold-total")).to_have_text("2 tickets · €70.00")
        expect(bar(visitor, pista, eid).locator(".cat-name")).to_have_text("Pista Central")
        expect(bar(visitor, pista, eid).locator(".cat-price")).to_have_text("€35.00")

        # Resized: the new total on both.
        r = httpx.put(f"{base}/{palco}", json={"cantidadTotal": 12}, headers=bearer(org))
        assert r.status_code == 200, r.text
        expect(row.locator(".cat-count")).to_have_text("12 of 12 left")
        expect(bar(visitor, palco, eid).locator(".cat-count")).to_have_text("12 of 12 left")

        # Removed: the row goes from both pages; the others and what was typed stay.
        r = httpx.delete(f"{base}/{grada}", headers=bearer(org))
        assert r.status_code == 204, r.text
        expect(bar(page, grada)).to_have_count(0)
        expect(bar(visitor, grada, eid)).to_have_count(0)
        expect(page.locator("#event-cats .cat .cat-name")).to_have_text(
            ["Pista Central", "Palco VIP"]
        )
        expect(qty).to_have_value("2")
        shot(page, "60-categories-live")

        # Live, not reloaded: the same documents, and neither read the event again.
        for p in (page, visitor):
            assert p.evaluate("window.__sameDocument === true")
        assert reads == [], reads
        # The row that came live is a working row: it holds.
        bar(page, palco).locator("input.qty").fill("1")
        page.click("#hold-btn")
        expect(page.locator("#order-panel")).to_be_visible()
        expect(page.locator("#order-lines")).to_contain_text("Palco VIP")
    finally:
        visitor.context.close()
    assert not problems, problems


def get_paths(api: ApiServer) -> dict[str, Any]:
    paths: dict[str, Any] = httpx.get(f"{api.url}/schema/openapi.json").json()["paths"]
    return paths
