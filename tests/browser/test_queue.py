"""The admission queue (SPEC 10.1) in the live page, in Chromium against a real API process.

An organizer configures a queue in the event editor (a refusal on the field first) and
watches the sales dashboard; three buyers use the page in their own browser contexts and
two more go through the API. Before the opening the page shows PRE, the opening time and
the seed's commitment; a buyer who joined then is in the pre-queue and, after the opening,
at the place the revealed seed gives them. A buyer who joins after the opening sees their
place move as tickets held before the queue are released and the buyers ahead are
admitted and hold through the API; admitted, they see the time left to hold, hold with the
Admission-Token (checked through the API) and confirm; the buyer still waiting is told it is
sold out; the dashboard's queue figures equal the API's. Every page fails the test on a
console error; screenshots land in ``var/screenshots/queue-*.png``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS, missing_browser, open_page
from tests.browser.test_page import PASSWORD, bar, bearer, email, eventually, hold, login
from tests.integration.conftest import ApiServer, create_event, register

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(missing_browser() is not None, reason=str(missing_browser())),
]

OPENS_IN_S = 15  # time for three pages to sign in and two of them to join the pre-queue


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(250)
    path = SCREENSHOTS / f"queue-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, path


@pytest.fixture
def pages(browser: Any) -> Iterator[Any]:
    """Open more pages (own contexts); every one fails the test on a console error."""
    opened: list[tuple[Any, list[str]]] = []

    def new_page() -> Any:
        page, problems = open_page(browser)
        opened.append((page, problems))
        return page

    yield new_page
    problems = [p for page, found in opened for p in found]
    for page, _ in opened:
        page.context.close()
    assert not problems, problems


def queue_of(api: ApiServer, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/events/{event_id}/queue")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def place_of(api: ApiServer, token: str, event_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/api/events/{event_id}/queue/me", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def fair_order(seed: str, user_ids: list[str]) -> list[str]:
    """docs/queue.md: sorted by HMAC-SHA256(seed bytes, user id), ascending."""
    key = bytes.fromhex(seed)
    return sorted(user_ids, key=lambda u: hmac.new(key, u.encode(), hashlib.sha256).digest())


def hold_admitted(api: ApiServer, token: str, event_id: str, cat_id: str) -> dict[str, Any]:
    """An admitted buyer holds one ticket through the API, with their admission token."""
    place = eventually_place(api, token, event_id, "ADMITIDO")
    r = httpx.post(
        f"{api.url}/api/orders",
        headers={**bearer(token), "Admission-Token": place["admisionToken"]},
        json={"eventoId": event_id, "tickets": [{"categoriaId": cat_id, "cantidad": 1}]},
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def eventually_place(api: ApiServer, token: str, event_id: str, estado: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        place = place_of(api, token, event_id)
        if place["estado"] == estado:
            return place
        assert time.monotonic() < deadline, place
        time.sleep(0.5)  # GET .../me is a rate-limited heartbeat (60 a minute)


def put_order(api: ApiServer, token: str, order_id: str, action: str) -> None:
    body = None
    if action == "confirm":
        body = {"metodoPago": "card", "transactionId": f"tx-{order_id}"}
    r = httpx.put(f"{api.url}/api/orders/{order_id}/{action}", headers=bearer(token), json=body)
    assert r.status_code == 200, r.text


def token_of(page: Any) -> str:
    raw = page.evaluate("sessionStorage.getItem('onsale.auth')")
    token: str = json.loads(raw)["token"]
    return token


def stat(page: Any, key: str) -> Any:
    return page.locator(f'#queue-figures .stat[data-stat="{key}"] dd')


def test_queue_journey_pre_queue_places_admission_hold_and_sold_out(
    api: ApiServer, page: Any, pages: Any
) -> None:
    from playwright.sync_api import expect

    openapi = httpx.get(f"{api.url}/schema/openapi.json").json()
    if "/api/events/{event_id}/queue" not in openapi["paths"]:
        pytest.skip("the API has no admission queue yet")

    # Two tickets, both held before the queue exists (no token needed yet): at the opening
    # nobody can be admitted, so every place is known and moves only when the test says.
    org_address = email("q-org")
    org, _ = register(api, org_address, role="ORGANIZADOR")
    event = create_event(api, org, [("Floor", 40.0, 2)], nombre="Queue Night")
    eid = event["id"]
    floor = event["categorias"][0]["id"]
    holder, _ = register(api, email("q-holder"))
    early = [hold(api, holder, eid, (floor, 1)) for _ in range(2)]
    api_buyer, api_user = register(api, email("q-api"))  # joins the pre-queue via the API

    # Three buyers in the page: W joins the pre-queue, P and L join after the opening.
    buyers = {}
    for name in ("w", "p", "l"):
        address = email(f"q-{name}")
        _, user = register(api, address)
        tab = pages()
        tab.goto(f"{api.url}/#/events/{eid}")
        login(tab, address, PASSWORD)
        expect(tab.locator("#hold-form")).to_be_visible()  # no queue yet
        buyers[name] = (tab, user)
    w_page, w_user = buyers["w"]
    p_page, p_user = buyers["p"]
    l_page, _ = buyers["l"]

    # The organizer configures the queue in the editor: a time in the past is refused on
    # the field, then one a few seconds ahead is saved.
    page.goto(f"{api.url}/#/events/{eid}/edit")
    login(page, org_address, PASSWORD)
    form = page.locator("#queue-form")
    expect(form).to_be_visible()
    expect(page.locator("#queue-form-now")).to_contain_text("No queue")
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    form.get_by_label("Opens at").fill(past)
    page.click("#queue-save")
    expect(page.locator("#qf-abre")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#queue-form-error")).to_be_visible()
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=OPENS_IN_S)
    form.get_by_label("Opens at").fill(opens.strftime("%Y-%m-%dT%H:%M:%S"))
    form.get_by_label("Tickets per admission").fill("1")
    form.get_by_label("Heartbeat (seconds)").fill("60")
    page.click("#queue-save")
    expect(page.locator("#queue-saved")).to_have_text("Queue saved.")
    expect(page.locator("#queue-form-now")).to_contain_text("not open yet")
    expect(page.locator("#queue-remove")).to_be_visible()
    info = queue_of(api, eid)
    assert info["estado"] == "PRE" and info["semilla"] is None
    assert info["abreEn"].startswith(opens.strftime("%Y-%m-%dT%H:%M:%S"))
    assert info["entradasPorAdmision"] == 1 and info["latidoSegundos"] == 60
    shot(page, "01-organizer-configures")
    page.goto(f"{api.url}/#/events/{eid}/sales")  # watched live through the journey
    expect(page.locator("#sales-queue")).to_be_visible()
    expect(page.locator("#sales-queue-state")).to_have_text("Not open yet")

    # PRE: the waiting room instead of the hold form, the opening and the commitment.
    for tab in (w_page, p_page, l_page):
        tab.reload()
        expect(tab.locator("#queue-panel")).to_be_visible()
        expect(tab.locator("#hold-form")).to_be_hidden()
        expect(tab.locator("#queue-state")).to_have_text("Opens soon")
        expect(tab.locator("#queue-when")).to_contain_text("The sale opens at")
        expect(tab.locator("#queue-commit")).to_have_text(info["compromisoSemilla"])
        expect(tab.locator("#queue-join")).to_be_enabled()
    w_page.click("#queue-join")
    expect(w_page.locator("#queue-place")).to_have_text(re.compile("You are in the pre-queue"))
    expect(w_page.locator("#queue-leave")).to_be_focused()
    r = httpx.post(f"{api.url}/api/events/{eid}/queue/join", headers=bearer(api_buyer))
    assert r.status_code == 201, r.text
    expect(p_page.locator("#queue-when")).to_contain_text(re.compile(r"\(in \d+ seconds?\)"))
    p_page.locator("#queue-fair summary").click()  # keyboard-reachable details
    expect(p_page.locator("#queue-commit")).to_be_visible()
    shot(w_page, "02-pre-queue")
    shot(p_page, "03-pre")
    assert datetime.now(UTC) < opens, "the setup took longer than the pre-queue"

    # The opening: the seed is revealed; the pre-queue is in the order it gives.
    info = eventually(p_page, lambda: (q := queue_of(api, eid))["semilla"] and q, timeout=30)
    seed = info["semilla"]
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == info["compromisoSemilla"]
    first, second = fair_order(seed, [w_user["id"], api_user["id"]])
    expect(p_page.locator("#queue-state")).to_have_text("Open")
    expect(p_page.locator("#queue-seed")).to_have_text(seed)
    expect(p_page.locator("#queue-verify")).to_contain_text("HMAC-SHA256")
    w_place = 1 if first == w_user["id"] else 2
    expect(w_page.locator("#queue-place")).to_contain_text(f"You are number {w_place} in line")
    expect(page.locator("#sales-queue-state")).to_have_text("Open")

    # P and L join after the opening: behind the pre-queue, nobody admitted (no stock).
    p_page.click("#queue-join")
    expect(stat(p_page, "posicion")).to_have_text("3")
    expect(p_page.locator("#queue-place")).to_contain_text("2 people ahead of you")
    expect(p_page.locator("#queue-place")).to_contain_text("Estimating your wait")
    expect(stat(p_page, "restantes")).to_have_text("0")
    l_page.click("#queue-join")
    expect(l_page.locator("#queue-place")).to_contain_text("You are number 4 in line")
    expect(l_page.locator("#queue-place")).to_have_attribute("aria-live", "polite")
    shot(p_page, "04-waiting")

    tokens = {w_user["id"]: token_of(w_page), api_user["id"]: api_buyer}
    # A released ticket admits the head of the line; it holds through the API; P moves up.
    put_order(api, holder, early[0]["id"], "cancel")
    if first == w_user["id"]:
        expect(w_page.locator("#queue-panel")).to_have_attribute("data-place", "ADMITIDO")
        expect(w_page.locator("#queue-countdown")).to_contain_text("left to hold your tickets")
        expect(w_page.locator("#hold-form")).to_be_visible()
    first_order = hold_admitted(api, tokens[first], eid, floor)
    expect(stat(p_page, "posicion")).to_have_text("2")
    expect(p_page.locator("#queue-place")).to_contain_text("1 person ahead of you")
    expect(stat(p_page, "espera")).to_have_text(re.compile(r"minute"))
    shot(p_page, "05-moved")

    put_order(api, holder, early[1]["id"], "cancel")
    second_order = hold_admitted(api, tokens[second], eid, floor)
    expect(stat(p_page, "posicion")).to_have_text("1")
    expect(p_page.locator("#queue-place")).to_contain_text("You are next.")
    expect(l_page.locator("#queue-place")).to_contain_text("You are number 2 in line")

    # A ticket comes back: P is admitted, sees the time left and holds with the token.
    put_order(api, tokens[first], first_order["id"], "cancel")
    expect(p_page.locator("#queue-panel")).to_have_attribute("data-place", "ADMITIDO")
    expect(p_page.locator("#queue-place")).to_contain_text("It's your turn")
    expect(p_page.locator("#queue-countdown")).to_have_text(
        re.compile(r"^(09:[0-5]\d|10:00) left to hold your tickets$")
    )
    expect(p_page.locator("#hold-form")).to_be_visible()
    expect(p_page.locator("#queue-heading")).to_be_focused()
    shot(p_page, "06-admitted")
    bar(p_page, floor).locator("input.qty").fill("1")
    p_page.click("#hold-btn")
    panel = p_page.locator("#order-panel")
    expect(panel).to_have_attribute("data-estado", "RESERVED")
    order_id = panel.get_attribute("data-order")
    p_token = token_of(p_page)
    r = httpx.get(f"{api.url}/api/orders/{order_id}", headers=bearer(p_token))
    assert r.status_code == 200, r.text
    assert r.json()["estado"] == "RESERVED" and r.json()["usuarioId"] == p_user["id"]
    expect(p_page.locator("#queue-place")).to_contain_text("You used your admission")
    expect(p_page.locator("#hold-form")).to_be_hidden()
    assert place_of(api, p_token, eid)["estado"] == "USADO"
    shot(p_page, "07-held")

    # Everything paid: the buyer still waiting is told it is sold out, live.
    put_order(api, tokens[second], second_order["id"], "confirm")
    p_page.click("#confirm-btn")
    expect(panel).to_have_attribute("data-estado", "CONFIRMED")
    expect(l_page.locator("#queue-state")).to_have_text("Sold out")
    expect(l_page.locator("#queue-panel")).to_have_attribute("data-place", "AGOTADO")
    expect(l_page.locator("#queue-place")).to_contain_text("Sold out")
    expect(l_page.locator("#hold-form")).to_be_hidden()
    shot(l_page, "08-sold-out")

    # The organizer's dashboard followed along: its queue figures are the API's.
    r = httpx.get(f"{api.url}/api/admin/events/{eid}/sales", headers=bearer(org))
    cola = r.json()["cola"]
    assert cola["admitidos"] == 3 and cola["convertidos"] == 3, cola
    expect(page.locator("#sales-queue-state")).to_have_text("Sold out")
    for key in ("enCola", "admitidos", "admitidosSinReserva", "convertidos", "perdidos"):
        expect(page.locator(f'#sales-queue-list [data-stat="{key}"] dd')).to_have_text(
            str(cola[key])
        )
    expect(page.locator('#sales-queue-list [data-stat="agotadoEn"] dd')).not_to_have_text(
        "not sold out"
    )
    expect(page.locator(f'#sales-rows tr[data-cat="{floor}"] .s-wait')).to_have_text("0")
    expect(page.locator(f'#sales-rows tr[data-cat="{floor}"] .s-sold')).to_have_text("2")
    shot(page, "09-dashboard")

    # The organizer removes the queue: the event is open to all again.
    page.goto(f"{api.url}/#/events/{eid}/edit")
    expect(page.locator("#queue-remove")).to_be_visible()
    page.click("#queue-remove")
    page.click("#queue-remove")
    expect(page.locator("#queue-saved")).to_contain_text("Queue removed")
    assert httpx.get(f"{api.url}/api/events/{eid}/queue").status_code == 404
