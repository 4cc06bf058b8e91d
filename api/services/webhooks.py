"""Webhook endpoints: who may register what, listing, the test message, the delivery log,
and the ``event.updated`` message (SPEC 11.1). Sending is api.webhooks.dispatcher's."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from api.security import Principal
from api.services.errors import Forbidden, Invalid, NotFound
from api.services.events import LiveEvent
from api.webhooks import messages, signing, urls
from engine.models import new_id
from engine.vocabulary import Role
from persistence.aio import AsyncStore
from persistence.webhooks import AsyncWebhookStore, Delivery, WebhookEndpoint, seq_of

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class WebhookService:
    def __init__(
        self,
        hooks: AsyncWebhookStore,
        store: AsyncStore,
        policy: urls.UrlPolicy,
        *,
        wake: Callable[[], None] | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.hooks = hooks
        self.store = store
        self.policy = policy
        self.wake = wake or (lambda: None)
        self.prepare = prepare

    async def create(
        self, who: Principal, url: str, types: list[str], event_id: str | None
    ) -> WebhookEndpoint:
        """ORGANIZADOR: for one of their events (``eventoId`` required); ADMIN: any
        event, or all of them when ``eventoId`` is absent."""
        if who.role not in (Role.ADMIN, Role.ORGANIZER):
            raise Forbidden("requires role ORGANIZADOR or ADMIN", code="forbidden")
        if len(set(types)) != len(types):
            raise Invalid(
                "eventos has duplicates",
                code="webhook_types_duplicated",
                fields={"eventos": "each type at most once"},
            )
        if event_id is None and not who.is_admin:
            raise Invalid(
                "an organizer's webhook needs eventoId",
                code="webhook_event_required",
                fields={"eventoId": "required for an organizer"},
            )
        if event_id is not None:
            event = await self.store.get_event(event_id)
            if event is None:
                raise NotFound(f"event {event_id} not found", code="event_not_found")
            if not who.is_admin and event.organizer_id != who.id:
                raise Forbidden("only the event's organizer or an ADMIN", code="not_owner")
        try:
            await urls.check(url, self.policy)
        except urls.UnsafeUrl as e:
            raise Invalid(str(e), code=e.code, fields={"url": str(e)}) from None
        endpoint = WebhookEndpoint(
            id=new_id(),
            owner_id=who.id,
            url=url,
            types=list(types),
            event_id=event_id,
            secret=signing.new_secret(),
            created_at=_now_ms(),
        )
        if self.prepare is not None:  # before the endpoint exists: nothing it wants is trimmed
            await self.prepare()
        await self.hooks.create_endpoint(endpoint)
        return endpoint

    async def list_endpoints(
        self, who: Principal, page: int, limit: int
    ) -> tuple[list[WebhookEndpoint], int]:
        return await self.hooks.list_endpoints(
            page, limit, owner_id=None if who.is_admin else who.id
        )

    async def get(self, who: Principal, endpoint_id: str) -> WebhookEndpoint:
        """Someone else's endpoint is a 404, as if it did not exist."""
        endpoint = await self.hooks.get_endpoint(endpoint_id)
        if endpoint is None or (not who.is_admin and endpoint.owner_id != who.id):
            raise NotFound(f"webhook {endpoint_id} not found", code="webhook_not_found")
        return endpoint

    async def delete(self, who: Principal, endpoint_id: str) -> None:
        await self.get(who, endpoint_id)
        await self.hooks.delete_endpoint(endpoint_id)

    async def send_test(self, who: Principal, endpoint_id: str) -> Delivery:
        """A ``webhook.test`` delivery, sent (signed, retried) like any other."""
        endpoint = await self.get(who, endpoint_id)
        now = _now_ms()
        delivery_id = messages.delivery_id("test", endpoint.id, new_id())
        delivery = Delivery(
            id=delivery_id,
            endpoint_id=endpoint.id,
            type=messages.WEBHOOK_TEST,
            subject=f"test:{delivery_id}",
            seq=seq_of(f"{now}-0"),
            body=messages.body(
                messages.WEBHOOK_TEST, now, {"webhookId": endpoint.id, "url": endpoint.url}
            ),
            created_at=now,
            next_at=now,
        )
        await self.hooks.add_deliveries([delivery])
        self.wake()
        return delivery

    async def deliveries(
        self, who: Principal, endpoint_id: str, page: int, limit: int
    ) -> tuple[list[Delivery], int]:
        await self.get(who, endpoint_id)
        return await self.hooks.list_deliveries(endpoint_id, page, limit)

    async def event_updated(self, live: LiveEvent) -> None:
        """``event.updated`` for the endpoints that want it. Best effort by design: the
        update is already stored; a webhook store outage is logged, never fails it."""
        from api.present import event_out  # present imports the services

        event = live.event
        event_json = event_out(live.event, live.stock)
        try:
            endpoints = await self.hooks.active_endpoints()
            now = _now_ms()
            stamp = f"{now}-{event.updated_at % 1_000_000}"
            out = messages.deliveries_for(
                endpoints,
                messages.EVENT_UPDATED,
                event.id,
                source=f"event:{event.id}",
                stream_id=stamp,
                subject=f"event:{event.id}",
                payload=messages.body(messages.EVENT_UPDATED, now, msgspec.to_builtins(event_json)),
                now_ms=now,
            )
            if out:
                await self.hooks.add_deliveries(out)
                self.wake()
        except Exception:
            log.exception("webhooks: event.updated for %s not recorded", event.id)
