"""On-sale rush: buyers open an event, hold 1-4 tickets in 1-2 categories, then confirm most,
abandon some (the hold expires) and cancel a few. A sold-out category is retried once or
twice with another one. Every response is checked against the contract; a wrong answer is a
locust failure, an expected refusal (sold out, not on sale) a success counted in the ledger.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.users import LEDGER, POOL, json_of, problem_code, require_seed

CONFIRM_SHARE = 0.75
ABANDON_SHARE = 0.15  # the rest cancel
REPLAY_SHARE = 0.05  # resend the hold with the same Idempotency-Key: must replay
OTHER_EVENT_SHARE = 0.10  # buy from an event of the list (organizers' events) instead
EXPIRY_GRACE_S = 5.0  # an abandoned hold must read EXPIRED this long after its deadline
MAX_RETRIES = 2


def _iso_ms(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class RushBuyer(FastHttpUser):
    weight = 10
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        require_seed()
        self.account = POOL.next_buyer()
        self.auth = {"Authorization": f"Bearer {self.account.token}"}
        self.abandoned: list[tuple[str, float]] = []  # (order id, deadline epoch s)
        self.last_order: str | None = None

    # -- the rush ------------------------------------------------------------------------

    @tag("rush")
    @task(10)
    def buy(self) -> None:
        event = self._open_event()
        if event is None:
            return
        available = {c["id"]: c["disponible"] for c in event["categorias"] if c["disponible"] > 0}
        if not available:
            LEDGER.outcomes["event_sold_out"] += 1
            return
        wanted = random.randint(1, 4)
        cats = random.sample(sorted(available), k=min(len(available), random.choice((1, 1, 2))))
        items = self._split(wanted, cats)
        order = None
        for _attempt in range(MAX_RETRIES + 1):
            order, sold_out = self._hold(event["id"], items)
            if order is not None or sold_out is None:
                break
            available.pop(sold_out, None)
            others = [c for c in available if c not in items]
            if not others or sold_out not in items:
                LEDGER.outcomes["gave_up_sold_out"] += 1
                return
            LEDGER.outcomes["retry_other_category"] += 1
            items[random.choice(others)] = items.pop(sold_out)
        if order is None:
            return
        self.last_order = order["id"]
        fate = random.random()
        if fate < CONFIRM_SHARE:
            gevent.sleep(random.uniform(0.2, 1.2))  # paying
            self._confirm(order)
        elif fate < CONFIRM_SHARE + ABANDON_SHARE:
            LEDGER.outcomes["abandoned"] += 1
            self.abandoned.append((order["id"], _iso_ms(order["expiraEn"])))
        else:
            gevent.sleep(random.uniform(0.1, 0.5))
            self._cancel(order)

    @tag("rush")
    @task(1)
    def check_abandoned(self) -> None:
        """An abandoned hold must be EXPIRED soon after its deadline (stock returned)."""
        now = time.time()
        due = [(o, d) for o, d in self.abandoned if now > d + EXPIRY_GRACE_S]
        if not due:
            return
        order_id, deadline = due[0]
        self.abandoned.remove(due[0])
        with self.client.get(
            f"/api/orders/{order_id}",
            headers=self.auth,
            name="GET /api/orders/[id] (abandoned)",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"abandoned order: HTTP {r.status_code}")
            elif json_of(r)["estado"] != "EXPIRED":
                r.failure(
                    f"hold {order_id} is {json_of(r)['estado']} "
                    f"{now - deadline:.1f}s after its deadline"
                )
            else:
                LEDGER.outcomes["expired_seen"] += 1
                r.success()

    @tag("rush")
    @task(1)
    def my_orders(self) -> None:
        with self.client.get(
            "/api/orders/my-orders?limit=50",
            headers=self.auth,
            name="GET /api/orders/my-orders",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            orders = json_of(r)["data"]
            created = [o["creadoEn"] for o in orders]
            if created != sorted(created, reverse=True):
                r.failure("my-orders is not newest first")
            elif any(o["usuarioId"] != self.account.id for o in orders):
                r.failure("my-orders lists another user's order")
            elif (
                self.last_order
                and POOL.buyers_exclusive()
                and self.last_order not in {o["id"] for o in orders}
            ):
                r.failure(f"my-orders misses the order {self.last_order} just made")
            else:
                r.success()

    # -- steps ---------------------------------------------------------------------------

    def _open_event(self) -> dict[str, Any] | None:
        assert POOL.seed is not None
        event_id = random.choice(POOL.seed.rush_events).id
        if random.random() < OTHER_EVENT_SHARE:
            with self.client.get(
                "/api/events?limit=50", name="GET /api/events", catch_response=True
            ) as r:
                if r.status_code == 200 and json_of(r)["data"]:
                    event_id = random.choice(json_of(r)["data"])["id"]
                    r.success()
                elif r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}")
        with self.client.get(
            f"/api/events/{event_id}", name="GET /api/events/[id]", catch_response=True
        ) as r:
            if r.status_code == 404:  # an organizer's event may be gone: not ours
                r.success()
                return None
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return None
            event: dict[str, Any] = json_of(r)
            if not event.get("enVenta", True):
                LEDGER.outcomes["not_on_sale"] += 1
                return None
            return event

    @staticmethod
    def _split(total: int, cats: list[str]) -> dict[str, int]:
        if len(cats) == 1 or total == 1:
            return {cats[0]: total}
        first = random.randint(1, total - 1)
        return {cats[0]: first, cats[1]: total - first}

    def _post_hold(self, body: dict[str, Any], key: str, name: str) -> Any:
        return self.client.post(
            "/api/orders",
            json=body,
            headers={**self.auth, "Idempotency-Key": key},
            name=name,
            catch_response=True,
        )

    def _hold(self, event_id: str, items: dict[str, int]) -> tuple[dict[str, Any] | None, Any]:
        """(order, None) when held; (None, category id) when that one is sold out;
        (None, None) on any other answer."""
        body = {
            "eventoId": event_id,
            "tickets": [{"categoriaId": c, "cantidad": q} for c, q in items.items()],
        }
        key = uuid.uuid4().hex
        with self._post_hold(body, key, "POST /api/orders") as r:
            if r.status_code == 201:
                order = json_of(r)
                got = {t["categoriaId"]: t["cantidad"] for t in order["tickets"]}
                if order["estado"] != "RESERVED" or order["eventoId"] != event_id:
                    r.failure(f"hold answered {order['estado']} for {order['eventoId']}")
                    return None, None
                if got != items:
                    r.failure(f"hold answered tickets {got}, asked {items}")
                    return None, None
                if order["usuarioId"] != self.account.id:
                    r.failure("hold answered another user's order")
                    return None, None
                LEDGER.outcomes["held"] += 1
                LEDGER.outcomes["tickets_held"] += sum(items.values())
                r.success()
            elif r.status_code == 409 and problem_code(json_of(r)) == "sold_out":
                LEDGER.outcomes["sold_out"] += 1
                r.success()
                return None, json_of(r).get("categoriaId") or next(iter(items))
            elif r.status_code == 409 and problem_code(json_of(r)) == "event_not_on_sale":
                LEDGER.outcomes["not_on_sale"] += 1
                r.success()
                return None, None
            elif r.status_code == 404 and problem_code(json_of(r)) in (
                "event_not_found",
                "category_not_found",
            ):  # an organizer removed it in between
                LEDGER.outcomes["gone"] += 1
                r.success()
                return None, None
            else:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")
                return None, None
        if random.random() < REPLAY_SHARE:
            with self._post_hold(body, key, "POST /api/orders (replay)") as again:
                replayed = json_of(again) if again.status_code == 201 else {}
                if replayed.get("id") != order["id"]:
                    again.failure(
                        f"replay with the same Idempotency-Key answered {again.status_code} "
                        f"{replayed.get('id')}, not {order['id']}"
                    )
                elif again.headers.get("Idempotent-Replayed") != "true":
                    again.failure("replay without Idempotent-Replayed: true")
                else:
                    LEDGER.outcomes["replayed"] += 1
                    again.success()
        return order, None

    def _confirm(self, order: dict[str, Any]) -> None:
        body = {"metodoPago": "tarjeta", "transactionId": f"tx-{order['id']}"}
        for attempt in range(2 if random.random() < REPLAY_SHARE else 1):
            name = "PUT /api/orders/[id]/confirm" + (" (retry)" if attempt else "")
            with self.client.put(
                f"/api/orders/{order['id']}/confirm",
                json=body,
                headers=self.auth,
                name=name,
                catch_response=True,
            ) as r:
                if r.status_code == 200 and json_of(r).get("estado") == "CONFIRMED":
                    if attempt == 0:
                        LEDGER.outcomes["confirmed"] += 1
                        LEDGER.confirm(json_of(r))
                    r.success()
                elif r.status_code == 409 and problem_code(json_of(r)) == "order_expired":
                    LEDGER.outcomes["confirm_expired"] += 1
                    r.success()
                    return
                else:
                    if r.status_code == 0:
                        LEDGER.outcomes["confirm_unknown"] += 1
                    r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")
                    return

    def _cancel(self, order: dict[str, Any]) -> None:
        with self.client.put(
            f"/api/orders/{order['id']}/cancel",
            headers=self.auth,
            name="PUT /api/orders/[id]/cancel",
            catch_response=True,
        ) as r:
            if r.status_code == 200 and json_of(r).get("estado") == "CANCELLED":
                LEDGER.outcomes["cancelled"] += 1
                r.success()
            else:
                r.failure(f"HTTP {r.status_code} {r.text[:120] if r.text else ''}")
