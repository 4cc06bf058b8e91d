"""Browsing: the event list, search and detail pages, anonymous, checked for sane stock."""

from __future__ import annotations

import random
from typing import Any

from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users import CITIES, POOL, json_of


def stock_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with an event's live stock figures, or None."""
    total = 0
    for c in event.get("categorias", []):
        if not 0 <= c["disponible"] <= c["cantidadTotal"]:
            return (
                f"event {event['id']} category {c['id']}: disponible {c['disponible']} "
                f"outside 0..{c['cantidadTotal']}"
            )
        total += c["disponible"]
    if event.get("disponible") != total:
        return f"event {event['id']}: disponible {event.get('disponible')} != sum {total}"
    return None


class Browser(FastHttpUser):
    weight = 4
    wait_time = between(0.5, 2.0)

    def _check_page(self, r: Any) -> list[dict[str, Any]]:
        if r.status_code != 200:
            r.failure(f"HTTP {r.status_code}")
            return []
        body = json_of(r)
        events = body.get("data", [])
        page = body.get("pagination", {})
        if len(events) > page.get("limit", 0):
            r.failure(f"{len(events)} events on a page of limit {page.get('limit')}")
            return []
        for event in events:
            problem = stock_problem(event)
            if problem:
                r.failure(problem)
                return []
        r.success()
        return events

    @tag("browse")
    @task(3)
    def list_events(self) -> None:
        page = random.choice((1, 1, 1, 2))
        with self.client.get(
            f"/api/events?page={page}&limit=20", name="GET /api/events", catch_response=True
        ) as r:
            self.seen = self._check_page(r) or getattr(self, "seen", [])

    @tag("browse")
    @task(2)
    def search(self) -> None:
        query = random.choice(
            (
                f"ubicacion={random.choice(CITIES)}",
                "disponible=true",
                "disponible=false",
                "fecha=2031-06-01",
                f"ubicacion={random.choice(CITIES)}&disponible=true",
            )
        )
        with self.client.get(
            f"/api/events/search?{query}", name="GET /api/events/search", catch_response=True
        ) as r:
            events = self._check_page(r)
            if "disponible=true" in query and any(e["disponible"] <= 0 for e in events):
                r.failure("search disponible=true returned a sold-out event")
            if "disponible=false" in query and any(e["disponible"] > 0 for e in events):
                r.failure("search disponible=false returned an event with stock")

    def _some_event_id(self) -> str | None:
        seen = getattr(self, "seen", [])
        if seen and random.random() < 0.5:
            return str(random.choice(seen)["id"])
        if POOL.seed and POOL.seed.rush_events:
            return random.choice(POOL.seed.rush_events).id
        return None

    @tag("browse")
    @task(3)
    def detail(self) -> None:
        event_id = self._some_event_id()
        if event_id is None:
            return
        with self.client.get(
            f"/api/events/{event_id}", name="GET /api/events/[id]", catch_response=True
        ) as r:
            if r.status_code == 404:
                r.success()  # an organizer's event deleted in between
                return
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            problem = stock_problem(json_of(r))
            if problem:
                r.failure(problem)
            else:
                r.success()

    @tag("browse")
    @task(1)
    def categories(self) -> None:
        event_id = self._some_event_id()
        if event_id is None:
            return
        with self.client.get(
            f"/api/events/{event_id}/categories",
            name="GET /api/events/[id]/categories",
            catch_response=True,
        ) as r:
            if r.status_code == 404:
                r.success()
                return
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            cats = json_of(r)
            bad = [c for c in cats if not 0 <= c["disponible"] <= c["cantidadTotal"]]
            if bad:
                r.failure(f"category {bad[0]['id']} disponible outside 0..cantidadTotal")
            else:
                r.success()
