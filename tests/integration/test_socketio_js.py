"""The original system's client code, with the official JavaScript ``socket.io-client``.

``tests/js/client.mjs`` runs each scenario with Node against a real ``onsale serve``, over
the websocket-only and the polling-only transport. The client is pinned by
``tests/js/package-lock.json`` and installed here with ``npm ci`` when missing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ApiServer, create_event, node_with, register

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
TRANSPORTS = ["websocket", "polling"]


@pytest.fixture(scope="module")
def node() -> str:
    return node_with(JS_DIR, "socket.io-client", "the socket.io-client tests")


def run_js(node: str, api: ApiServer, scenario: str, **options: Any) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(JS_DIR / "client.mjs"), api.url, scenario, json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output from client.mjs (exit {done.returncode}):\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and result["ok"], f"{scenario}: {result}\n{done.stderr[-2000:]}"
    assert result["transport"] == options["transport"]
    return result


@pytest.fixture(scope="module")
def world(api: ApiServer) -> dict[str, Any]:
    org, _ = register(api, "js-org@example.com", role="ORGANIZADOR")
    buyer, buyer_user = register(api, "js-buyer@example.com")
    _, other_user = register(api, "js-other@example.com")
    return {"org": org, "buyer": buyer, "me": buyer_user["id"], "other": other_user["id"]}


def stock_of(api: ApiServer, event: dict[str, Any]) -> int:
    body = httpx.get(f"{api.url}/api/events/{event['id']}").json()
    stock: int = body["categorias"][0]["disponible"]
    return stock


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_join_event_then_a_hold_is_a_stock_update(
    node: str, api: ApiServer, world: dict[str, Any], transport: str
) -> None:
    event = create_event(api, world["org"], [("General", 20.0, 100)])
    category = event["categorias"][0]["id"]
    seen = run_js(
        node,
        api,
        "stock",
        transport=transport,
        token=world["buyer"],
        eventId=event["id"],
        categoriaId=category,
        quantities=[3],
    )
    assert seen["joined"]["snapshot"] is True
    assert seen["before"] == 100
    assert seen["update"] == {"eventoId": event["id"], "categoriaId": category, "nuevoStock": 97}
    # The stream id arrives as a second argument, never inside the seed's payload.
    assert isinstance(seen["id"], str) and seen["id"].split("-")[0].isdigit()
    assert stock_of(api, event) == 97


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_low_stock_alert(node: str, api: ApiServer, world: dict[str, Any], transport: str) -> None:
    event = create_event(api, world["org"], [("VIP", 50.0, 20)])
    # 10% of 20 is 2: holding 18 crosses the threshold (at most 10 per order).
    seen = run_js(
        node,
        api,
        "almost-sold-out",
        transport=transport,
        token=world["buyer"],
        eventId=event["id"],
        categoriaId=event["categorias"][0]["id"],
        quantities=[9, 9],
    )
    assert seen["alert"]["eventoId"] == event["id"]
    assert seen["alert"]["categoriaId"] == event["categorias"][0]["id"]
    assert seen["alert"]["stockRestante"] == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_join_user_for_oneself_gets_status_changes(
    node: str, api: ApiServer, world: dict[str, Any], transport: str
) -> None:
    event = create_event(api, world["org"], [("General", 20.0, 50)])
    seen = run_js(
        node,
        api,
        "own-user",
        transport=transport,
        token=world["buyer"],
        userId=world["me"],
        eventId=event["id"],
        categoriaId=event["categorias"][0]["id"],
    )
    assert seen["joined"] == {"room": "user", "userId": world["me"]}
    assert seen["reserved"]["orderId"] == seen["orderId"]
    assert seen["reserved"]["expiraEn"]
    assert seen["confirmed"]["orderId"] == seen["orderId"]
    assert seen["confirmed"]["nuevoEstado"] == "CONFIRMED"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_join_user_for_someone_else_is_an_error(
    node: str, api: ApiServer, world: dict[str, Any], transport: str
) -> None:
    seen = run_js(
        node, api, "other-user", transport=transport, token=world["buyer"], userId=world["other"]
    )
    assert seen["error"]["code"] == "forbidden"


def test_the_readme_snippet_is_the_seeds_and_runs(
    node: str, api: ApiServer, world: dict[str, Any]
) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Socket.IO") :]
    section = section[: section.index("\n## ", 1)]
    blocks = [b.split("```")[0] for b in section.split("```javascript\n")[1:]]
    assert len(blocks) == 3, "connect, client -> server, server -> client"
    seed = REPO.parent / "shared" / "seed.md"
    if seed.is_file():
        original = seed.read_text()
        original = original[original.index("## WebSocket Events") :]
        for block in blocks[1:]:
            assert block in original, f"not verbatim from seed.md:\n{block}"
    # Run it as written, URL and token aside, and watch what the server answers.
    script = "\n".join(blocks).replace("http://localhost:3000", api.url)
    script = f"const token = {json.dumps(world['buyer'])};\n{script}\n{SNIPPET_HARNESS}"
    path = JS_DIR / ".readme-snippet.mjs"
    path.write_text(script)
    try:
        done = subprocess.run(
            [node, str(path)], capture_output=True, text=True, timeout=60, cwd=JS_DIR
        )
    finally:
        path.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    errors = {e["code"] for e in json.loads(done.stdout.strip().splitlines()[-1])}
    # Event '123' does not exist here and user 'abc' is not the token's user: both are
    # answered, which shows each emit reached the hub.
    assert errors == {"event_not_found", "forbidden"}, errors


SNIPPET_HARNESS = """
const errors = [];
socket.on('error', (data) => {
  errors.push(data);
  if (errors.length === 2) { console.log(JSON.stringify(errors)); process.exit(0); }
});
setTimeout(() => { console.log(JSON.stringify(errors)); process.exit(1); }, 10000);
"""
