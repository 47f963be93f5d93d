"""``/webhooks``: subscribe a URL to job and batch events, list and delete subscriptions,
read each delivery's attempts, send a test delivery, rotate the signing secret.

Views parse, call one ``service.webhooks`` function and serialize (``schemas/webhooks``).
"""

from __future__ import annotations

from typing import Any

from flask import Response
from pydantic import BaseModel, Field

from service import queue, webhooks
from service.api import API_PREFIX
from service.api.openapi import json_response, problems, register_models
from service.api.plumbing import (
    PageQuery,
    api_blueprint,
    db,
    no_content,
    respond,
    settings,
    tenant_id,
)
from service.models import Webhook, WebhookAttempt, WebhookDelivery
from service.schemas.webhooks import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from service.timeutil import iso

bp = api_blueprint("webhooks", __name__, "/webhooks", "Webhooks")
register_models(bp, WebhookCreated, WebhookOut, DeliveryOut)


class WebhookPath(BaseModel):
    webhook_id: str = Field(max_length=64)


def webhook_dict(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "created_at": iso(webhook.created_at),
        "previous_secret_expires_at": iso(webhook.previous_secret_expires_at),
    }
    return {**out, "secret": secret} if secret is not None else out


def delivery_dict(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": [
            AttemptOut(
                attempt=a.attempt,
                started_at=a.started_at,
                duration_seconds=a.duration_seconds,
                status_code=a.status_code,
                error=a.error,
            ).model_dump(mode="json")
            for a in attempts
        ],
        "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": iso(delivery.delivered_at),
    }


@bp.post(
    "",
    summary="Subscribe a URL to events; the answer holds the signing secret, shown once",
    responses={
        201: json_response(WebhookCreated, "Created", {"Location": "The webhook URL"}),
        **problems(400, 413),
    },
)
def create(body: WebhookCreate) -> Response:
    webhook, secret = webhooks.create_webhook(db(), tenant_id(), body, settings())
    return respond(
        webhook_dict(webhook, secret),
        status=201,
        headers={"Location": f"{API_PREFIX}/webhooks/{webhook.id}"},
    )


@bp.get("", summary="List webhooks, newest first", responses={200: WebhookList, **problems()})
def list_webhooks(query: PageQuery) -> Response:
    items, next_cursor = webhooks.list_webhooks(
        db(), tenant_id(), query.limit, query.cursor, settings().limits.page_size
    )
    return respond({"items": [webhook_dict(w) for w in items], "next_cursor": next_cursor})


@bp.delete(
    "/<webhook_id>",
    summary="Delete a webhook and its deliveries",
    responses={204: None, **problems(404)},
)
def delete(path: WebhookPath) -> Response:
    webhooks.delete_webhook(db(), tenant_id(), path.webhook_id)
    return no_content()


@bp.get(
    "/<webhook_id>/deliveries",
    summary="A webhook's deliveries, newest first, each with every attempt",
    responses={200: DeliveryList, **problems(404)},
)
def deliveries(path: WebhookPath, query: PageQuery) -> Response:
    rows, next_cursor = webhooks.list_deliveries(
        db(), tenant_id(), path.webhook_id, query.limit, query.cursor, settings().limits.page_size
    )
    items = [delivery_dict(delivery, attempts) for delivery, attempts in rows]
    return respond({"items": items, "next_cursor": next_cursor})


@bp.post(
    "/<webhook_id>/test",
    summary="Send a webhook.test event to this webhook now",
    responses={202: json_response(DeliveryOut, "Queued for delivery"), **problems(404)},
)
def test(path: WebhookPath) -> Response:
    delivery = webhooks.send_test(db(), tenant_id(), path.webhook_id)
    queue.send_delivery(settings(), delivery.id)  # if the broker is down, the relay sends it
    return respond(delivery_dict(delivery, []), status=202)


@bp.post(
    "/<webhook_id>/rotate-secret",
    summary="A new signing secret; the old one also signs until previous_secret_expires_at",
    responses={200: WebhookCreated, **problems(404)},
)
def rotate_secret(path: WebhookPath) -> Response:
    webhook, secret = webhooks.rotate_secret(db(), tenant_id(), path.webhook_id, settings())
    return respond(webhook_dict(webhook, secret))
