"""HTTP for webhook endpoints (SPEC 11.1); the rules are api.services.webhooks."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.deps import SERVICES, LimitParam, PageParam, resources
from api.schemas import (
    DeliveryOut,
    DeliveryPage,
    Id,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    pagination,
)
from api.security import Principal
from api.services.webhooks import WebhookService
from engine.models import iso
from persistence.webhooks import Delivery, WebhookEndpoint


def _webhooks(request: Request[Any, Any, Any]) -> WebhookService:
    service: WebhookService = resources(request).webhooks
    return service


def webhook_out(e: WebhookEndpoint) -> WebhookOut:
    return WebhookOut(
        id=e.id,
        url=e.url,
        eventos=e.types,
        eventoId=e.event_id,
        activo=e.active,
        creadoEn=iso(e.created_at),
        motivoDesactivacion=e.disabled_reason,
        desactivadoEn=iso(e.disabled_at) if e.disabled_at else None,
    )


def delivery_out(d: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        tipo=d.type,
        estado=d.status,
        intentos=d.attempts,
        ultimoCodigo=d.last_code,
        latenciaMs=d.latency_ms,
        creadoEn=iso(d.created_at),
        ultimoError=d.last_error,
    )


class WebhookController(Controller):
    path = "/api/webhooks"
    tags = ["webhooks"]
    dependencies = {**SERVICES, "webhooks": Provide(_webhooks, sync_to_thread=False)}

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, webhooks: WebhookService, who: Principal, data: WebhookIn
    ) -> WebhookCreated:
        e = await webhooks.create(who, data.url, list(data.eventos), data.eventoId)
        return WebhookCreated(
            id=e.id,
            url=e.url,
            eventos=e.types,
            eventoId=e.event_id,
            activo=e.active,
            secreto=e.secret,
            creadoEn=iso(e.created_at),
        )

    @get("/")
    async def list_webhooks(
        self,
        webhooks: WebhookService,
        who: Principal,
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> WebhookPage:
        found, total = await webhooks.list_endpoints(who, page, limit)
        return WebhookPage(
            data=[webhook_out(e) for e in found], pagination=pagination(page, limit, total)
        )

    @get("/{webhook_id:str}")
    async def get_webhook(
        self, webhooks: WebhookService, who: Principal, webhook_id: Id
    ) -> WebhookOut:
        return webhook_out(await webhooks.get(who, webhook_id))

    @delete("/{webhook_id:str}", status_code=HTTP_204_NO_CONTENT)
    async def delete_webhook(
        self, webhooks: WebhookService, who: Principal, webhook_id: Id
    ) -> None:
        await webhooks.delete(who, webhook_id)

    @post("/{webhook_id:str}/test", status_code=HTTP_202_ACCEPTED)
    async def test(self, webhooks: WebhookService, who: Principal, webhook_id: Id) -> DeliveryOut:
        return delivery_out(await webhooks.send_test(who, webhook_id))

    @get("/{webhook_id:str}/deliveries")
    async def deliveries(
        self,
        webhooks: WebhookService,
        who: Principal,
        webhook_id: Id,
        page: Annotated[int, PageParam],
        limit: Annotated[int, LimitParam],
    ) -> DeliveryPage:
        found, total = await webhooks.deliveries(who, webhook_id, page, limit)
        return DeliveryPage(
            data=[delivery_out(d) for d in found], pagination=pagination(page, limit, total)
        )
