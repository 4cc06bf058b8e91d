"""Organizers during the sale: create events, resize and add categories, edit and briefly
close their events while buyers (10 % of rush buyers pick a listed event) hold tickets in them.

Expected refusals are successes: shrinking a category below what is held or sold (409
``below_committed``). Anything else unexpected is a failure.
"""

from __future__ import annotations

import random
from typing import Any

from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users import CITIES, LEDGER, POOL, json_of, problem_code, require_seed

MAX_EVENTS_PER_ORGANIZER = 2
MAX_CATEGORIES = 5


class Organizer(FastHttpUser):
    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        require_seed()
        account = POOL.next_organizer()
        self.auth = {"Authorization": f"Bearer {account.token}"}
        # event id -> {"capacity": int, "categories": {category id: total}}
        self.events: dict[str, dict[str, Any]] = {}

    @tag("organizer")
    @task(1)
    def create_event(self) -> None:
        if len(self.events) >= MAX_EVENTS_PER_ORGANIZER:
            return
        cats = [
            {"nombre": "Platea", "precio": 70.0, "cantidadTotal": random.randint(50, 200)},
            {"nombre": "General", "precio": 35.0, "cantidadTotal": random.randint(100, 400)},
        ]
        capacity = 2 * sum(c["cantidadTotal"] for c in cats)
        with self.client.post(
            "/api/events",
            json={
                "nombre": f"Show {random.randint(1, 10**6)}",
                "descripcion": "created during the rush",
                "fecha": f"2031-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}T21:00:00Z",
                "ubicacion": random.choice(CITIES),
                "capacidadTotal": capacity,
                "precioBase": 35.0,
                "categorias": cats,
            },
            headers=self.auth,
            name="POST /api/events",
            catch_response=True,
        ) as r:
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")
                return
            event = json_of(r)
            self.events[event["id"]] = {
                "capacity": capacity,
                "categories": {c["id"]: c["cantidadTotal"] for c in event["categorias"]},
            }
            LEDGER.outcomes["events_created"] += 1
            r.success()

    def _pick(self) -> tuple[str, dict[str, Any]] | None:
        if not self.events:
            return None
        event_id = random.choice(sorted(self.events))
        return event_id, self.events[event_id]

    @tag("organizer")
    @task(4)
    def resize_category(self) -> None:
        picked = self._pick()
        if picked is None:
            return
        event_id, event = picked
        category_id = random.choice(sorted(event["categories"]))
        current = event["categories"][category_id]
        room = event["capacity"] - sum(event["categories"].values())
        step = random.randint(5, 40)
        new_total = current + min(step, room) if random.random() < 0.6 else current - step
        new_total = max(0, new_total)
        with self.client.put(
            f"/api/events/{event_id}/categories/{category_id}",
            json={"cantidadTotal": new_total},
            headers=self.auth,
            name="PUT /api/events/[id]/categories/[id]",
            catch_response=True,
        ) as r:
            body = json_of(r)
            if r.status_code == 200:
                if body.get("cantidadTotal") != new_total:
                    r.failure(f"resize answered {body.get('cantidadTotal')}, asked {new_total}")
                elif not 0 <= body.get("disponible", -1) <= new_total:
                    r.failure(f"resize left disponible {body.get('disponible')} of {new_total}")
                else:
                    event["categories"][category_id] = new_total
                    LEDGER.outcomes["categories_resized"] += 1
                    r.success()
            elif r.status_code == 409 and problem_code(body) == "below_committed":
                LEDGER.outcomes["resize_below_committed"] += 1
                r.success()
            else:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")

    @tag("organizer")
    @task(1)
    def add_category(self) -> None:
        picked = self._pick()
        if picked is None:
            return
        event_id, event = picked
        room = event["capacity"] - sum(event["categories"].values())
        if len(event["categories"]) >= MAX_CATEGORIES or room < 10:
            return
        total = random.randint(10, min(room, 100))
        with self.client.post(
            f"/api/events/{event_id}/categories",
            json={
                "nombre": f"Extra {len(event['categories'])}",
                "precio": 25.0,
                "cantidadTotal": total,
            },
            headers=self.auth,
            name="POST /api/events/[id]/categories",
            catch_response=True,
        ) as r:
            body = json_of(r)
            if r.status_code == 201 and body.get("disponible") == total:
                event["categories"][body["id"]] = total
                LEDGER.outcomes["categories_added"] += 1
                r.success()
            else:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")

    @tag("organizer")
    @task(1)
    def edit_event(self) -> None:
        picked = self._pick()
        if picked is None:
            return
        event_id, _ = picked
        close_briefly = random.random() < 0.3
        changes: dict[str, Any] = (
            {"enVenta": False} if close_briefly else {"descripcion": f"v{random.randint(1, 999)}"}
        )
        with self.client.put(
            f"/api/events/{event_id}",
            json=changes,
            headers=self.auth,
            name="PUT /api/events/[id]",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")
                return
            r.success()
        if close_briefly:
            self.wait()
            with self.client.put(
                f"/api/events/{event_id}",
                json={"enVenta": True},
                headers=self.auth,
                name="PUT /api/events/[id]",
                catch_response=True,
            ) as r:
                if r.status_code == 200 and json_of(r).get("enVenta") is True:
                    r.success()
                else:
                    r.failure(f"reopen: HTTP {r.status_code}")
