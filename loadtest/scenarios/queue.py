"""The admission queue (tag ``queue``): a crowd 10x the stock joins one event's queue during
its pre-queue, waits with heartbeats (``GET .../queue/me`` every 2 s), and when admitted
holds with its ``Admission-Token`` and confirms (most) or abandons (some). A hold refused
for anything but stock after an admission, or a hold accepted without a token, is a locust
failure. ``run_loadtest.py``'s audit then checks that nobody was sold past the stock, and
its queue sampler (loadtest/queue_check.py) that nobody was admitted past it.

The queued event is made once per locust process by the first queue user: stock
``QUEUE_STOCK`` (run_loadtest.py sets users/10: a crowd 10x the stock; 100 otherwise),
opening ``QUEUE_OPENS_IN_S`` (default 20) seconds after, so the whole crowd (spawned in
users/5 per second) joins during the pre-queue."""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
from gevent.lock import Semaphore
from locust import constant, tag, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users import LEDGER, POOL, json_of, require_seed

STOCK = int(os.environ.get("QUEUE_STOCK", "100"))
OPENS_IN_S = float(os.environ.get("QUEUE_OPENS_IN_S", "20"))
ABANDON_SHARE = 0.2
_made = Semaphore()
_event: dict[str, Any] = {}


def _queued_event(user: FastHttpUser) -> dict[str, Any]:
    with _made:
        if _event:
            return _event
        org = POOL.next_organizer()
        auth = {"Authorization": f"Bearer {org.token}"}
        body = {
            "nombre": f"Queue {uuid.uuid4().hex[:6]}",
            "descripcion": "queue load test",
            "fecha": "2030-01-01T20:00:00Z",
            "ubicacion": "Madrid",
            "capacidadTotal": STOCK,
            "precioBase": 10,
            "categorias": [
                {"nombre": "General", "precio": 10, "cantidadTotal": STOCK, "beneficios": []}
            ],
        }
        with user.client.post(
            "/api/events", json=body, headers=auth, name="/api/events (queued)", catch_response=True
        ) as r:
            event = json_of(r)
        opens = datetime.now(UTC) + timedelta(seconds=OPENS_IN_S)
        with user.client.put(
            f"/api/events/{event['id']}/queue",
            json={"abreEn": opens.isoformat(), "entradasPorAdmision": 1},
            headers=auth,
            name="/api/events/[id]/queue",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"configuring the queue answered {r.status_code}: {r.text[:200]}")
        _event.update(event)
        return _event


class QueueBuyer(FastHttpUser):
    weight = 10
    wait_time = constant(2)

    def on_start(self) -> None:
        require_seed()
        self.account = POOL.next_buyer()
        self.auth = {"Authorization": f"Bearer {self.account.token}"}
        self.event = _queued_event(self)
        self.done = False
        with self.client.post(
            f"/api/events/{self.event['id']}/queue/join",
            headers=self.auth,
            name="/api/events/[id]/queue/join",
            catch_response=True,
        ) as r:
            if r.status_code not in (200, 201):
                r.failure(f"joining answered {r.status_code}: {r.text[:200]}")
        order = {
            "eventoId": self.event["id"],
            "tickets": [{"categoriaId": self.event["categorias"][0]["id"], "cantidad": 1}],
        }
        self.order = order
        with self.client.post(
            "/api/orders", json=order, headers=self.auth, catch_response=True
        ) as r:
            if r.status_code == 403:
                r.success()  # no token: refused, as it must be
            else:
                r.failure(f"a hold without an admission answered {r.status_code}")

    @tag("queue")
    @task
    def wait_in_line(self) -> None:
        if self.done:
            gevent.sleep(5)
            return
        eid = self.event["id"]
        with self.client.get(
            f"/api/events/{eid}/queue/me",
            headers=self.auth,
            name="/api/events/[id]/queue/me",
            catch_response=True,
        ) as r:
            place = json_of(r)
            if r.status_code == 429:
                r.success()
                return
        if not isinstance(place, dict):
            return
        if place.get("estado") in ("AGOTADO", "USADO", "PERDIDO"):
            self.done = True
            return
        if place.get("estado") != "ADMITIDO":
            return
        self.done = True
        headers = {**self.auth, "Admission-Token": place["admisionToken"]}
        with self.client.post(
            "/api/orders", json=self.order, headers=headers, catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"an admitted hold answered {r.status_code}")
                return
            held = json_of(r)
        if random.random() < ABANDON_SHARE:
            return  # abandoned: the hold expires and the next in line is admitted
        with self.client.put(
            f"/api/orders/{held['id']}/confirm",
            json={"metodoPago": "card", "transactionId": uuid.uuid4().hex},
            headers=self.auth,
            name="/api/orders/[id]/confirm",
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                LEDGER.confirm(json_of(r))
