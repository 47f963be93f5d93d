"""Webhook shapes: the subscription a tenant posts and every webhook answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.names import WebhookEventName


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8,
        max_length=2000,
        description="http(s) URL that receives a POST per event. It must resolve to public "
        "addresses only (unless DELTAFLOW_WEBHOOK_ALLOW_PRIVATE=1); redirects are not followed.",
    )
    events: list[WebhookEventName] = Field(min_length=1, max_length=10)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="Until then, deliveries are signed with the old secret too."
    )


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_… — shown once: verify the webhook-signature with it.")


class WebhookList(BaseModel):
    items: list[WebhookOut]
    next_cursor: str | None


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    duration_seconds: float
    status_code: int | None = Field(description="The receiver's answer; null if none came.")
    error: str | None = Field(description="Why the attempt failed, if it did.")


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header: the same on every attempt.")
    event: str
    status: str = Field(description="pending | sending | succeeded | failed")
    attempts: list[AttemptOut]
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
