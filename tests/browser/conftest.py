"""Headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright's Python package,
against real ``onsale serve`` processes (the integration fixtures).

Nothing is downloaded: Playwright is pointed at the system browser. Install with
``apt-get install -y chromium`` and ``.venv/bin/pip install playwright`` (never
``playwright install``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, api, api_factory

__all__ = ["api", "api_factory"]  # fixtures shared with the integration suite

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "var" / "screenshots"
# Failed fetches (a 409 the page shows inline, say) are logged by Chromium as console
# errors; they are expected. Anything else on the console is a bug in the page.
EXPECTED_CONSOLE = ("Failed to load resource",)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: apt-get install -y chromium"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed: .venv/bin/pip install playwright (no browser download)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    # Real servers on a busy CI machine: give every expectation the same slack.
    expect.set_options(timeout=15_000)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    """A fresh browser context (own sessionStorage) and page, and the list its console
    errors and page errors land in (the caller closes ``page.context`` and checks it)."""
    context = browser.new_context(
        viewport=options.pop("viewport", {"width": 1280, "height": 860}),
        locale="en-US",
        timezone_id="UTC",
        **options,
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith(EXPECTED_CONSOLE)
            else None
        ),
    )
    page.set_default_timeout(15_000)
    return page, problems


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page; fails on console errors and page errors."""
    page, problems = open_page(browser)
    yield page
    page.context.close()
    assert not problems, problems
