"""Webhooks per tenant: subscriptions, the outbox, and each delivery's attempts.

- **Outbox.** When a job reaches a final status, ``job_ended`` (called by
  ``service.job_writes`` inside the very transaction of that change) inserts one
  ``webhook_deliveries`` row per subscribed webhook, with the exact body to send. So an
  event exists if and only if its change committed: none is lost when a process dies after
  the commit, none is sent for a change that rolled back. The last job of a batch to end
  also writes ``batch.completed`` (the batch row is locked first, so of two last jobs
  ending at once exactly one sees the batch complete; a unique key per event and webhook
  backs that up).
- **Delivery.** The Celery task ``deltaflow.deliver_webhook`` (``worker.tasks``) takes a
  delivery id and calls ``deliver``: a compare-and-set claims the attempt (``pending →
  sending``, attempts + 1, a lease), the POST is made with no transaction open
  (``service.webhook_delivery``: signed, address-checked, no redirects, short timeouts),
  and ``record`` stores the attempt and the outcome: ``succeeded``, ``pending`` again with
  ``next_attempt_at`` from the back-off schedule (``DELTAFLOW_WEBHOOK_RETRY_SECONDS``), or
  ``failed`` after the last retry. Every attempt is a ``webhook_attempts`` row.
- **Relay.** Each worker's reaper pass (``due``) sends a task for every delivery that is
  due and not sent recently, and puts back deliveries whose worker died mid-attempt. The
  database decides; a lost or repeated message only delays or repeats a claim that one wins.

Kernel code: no Flask, no Celery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service import webhook_delivery
from service.clock import read_db_now
from service.config import Settings
from service.cursors import paginate
from service.db import dialect_insert, transaction
from service.models import Batch, Job, Webhook, WebhookAttempt, WebhookDelivery, new_message_id
from service.problems import Invalid, NotFound
from service.schemas.names import UNFINISHED, WEBHOOK_TEST_EVENT, JobStatus
from service.schemas.responses.wire import finite
from service.schemas.webhooks import WebhookCreate
from service.timeutil import as_utc, iso, utcnow

PENDING, SENDING, SUCCEEDED, FAILED = "pending", "sending", "succeeded", "failed"
JOB_EVENTS = {
    JobStatus.succeeded.value: "job.succeeded",
    JobStatus.failed.value: "job.failed",
    JobStatus.cancelled.value: "job.cancelled",
}
BATCH_COMPLETED = "batch.completed"


def retry_schedule(settings: Settings) -> list[float]:
    """Seconds to wait before each retry; attempts = 1 + len(schedule)."""
    text = settings.webhook_retry_seconds.strip()
    return [float(part) for part in text.split(",") if part.strip()] if text else []


# --- subscriptions (the API's side; each commits) ------------------------------------------


def create_webhook(
    session: Session, tenant_id: str, body: WebhookCreate, settings: Settings
) -> tuple[Webhook, str]:
    """Store a subscription after checking its URL; returns it with its new secret."""
    try:
        webhook_delivery.resolve(body.url, allow_private=settings.webhook_allow_private)
    except webhook_delivery.AddressRefused as exc:
        raise Invalid.at(("body", "url"), str(exc)) from None
    secret = webhook_delivery.new_secret()
    events = sorted(set(body.events))
    webhook = Webhook(tenant_id=tenant_id, url=body.url, events=events, secret=secret)
    session.add(webhook)
    session.commit()
    return webhook, secret


def get_webhook(session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    webhook = session.scalar(
        select(Webhook).where(Webhook.id == webhook_id, Webhook.tenant_id == tenant_id)
    )
    if webhook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return webhook


def list_webhooks(
    session: Session, tenant_id: str, limit: int | None, cursor: str | None, max_limit: int
) -> tuple[list[Webhook], str | None]:
    query = select(Webhook).where(Webhook.tenant_id == tenant_id)
    return paginate(session, query, Webhook, limit, cursor, max_limit)


def delete_webhook(session: Session, tenant_id: str, webhook_id: str) -> None:
    """Delete a subscription with its deliveries: nothing more is sent to it."""
    session.delete(get_webhook(session, tenant_id, webhook_id))
    session.commit()


def rotate_secret(
    session: Session, tenant_id: str, webhook_id: str, settings: Settings
) -> tuple[Webhook, str]:
    """A new secret; the old one keeps signing (beside it) for the grace period."""
    webhook = get_webhook(session, tenant_id, webhook_id)
    secret = webhook_delivery.new_secret()
    webhook.previous_secret = webhook.secret
    grace = timedelta(seconds=settings.webhook_rotation_grace_seconds)
    webhook.previous_secret_expires_at = read_db_now(session) + grace
    webhook.secret = secret
    session.commit()
    return webhook, secret


def send_test(session: Session, tenant_id: str, webhook_id: str) -> WebhookDelivery:
    """A ``webhook.test`` delivery to this webhook alone (whatever it subscribes to)."""
    webhook = get_webhook(session, tenant_id, webhook_id)
    now = read_db_now(session)
    delivery_id = new_message_id()
    data = {"webhook_id": webhook.id, "message": "a test delivery from Deltaflow"}
    _insert(session, [webhook.id], WEBHOOK_TEST_EVENT, f"test:{delivery_id}", data, now)
    session.execute(  # the caller sends its task at once; the relay need not
        update(WebhookDelivery)
        .where(WebhookDelivery.event_key == f"test:{delivery_id}")
        .values(sent_at=now)
    )
    session.commit()
    delivery = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook.id,
            WebhookDelivery.event_key == f"test:{delivery_id}",
        )
    )
    assert delivery is not None
    return delivery


def list_deliveries(
    session: Session,
    tenant_id: str,
    webhook_id: str,
    limit: int | None,
    cursor: str | None,
    max_limit: int,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], str | None]:
    """A page of a webhook's deliveries, newest first, each with its attempts in order."""
    webhook = get_webhook(session, tenant_id, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    rows, next_cursor = paginate(session, query, WebhookDelivery, limit, cursor, max_limit)
    attempts: dict[str, list[WebhookAttempt]] = {row.id: [] for row in rows}
    if rows:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(row, attempts[row.id]) for row in rows], next_cursor


# --- the outbox (inside the transaction of the change) --------------------------------------


# A tenant's webhooks, read at every job's end: built once (tenant bound).
_SUBSCRIBED = select(Webhook.id, Webhook.events).where(
    Webhook.tenant_id == bindparam("webhook_tenant", type_=Webhook.tenant_id.type)
)


def job_ended(session: Session, job_id: str, row: Any, known: dict[str, Any] | None = None) -> bool:
    """Outbox rows for a job that just reached a final status (``row``: its columns).
    False when the tenant has no webhook, so no delivery can have been written (a run
    then has nothing to relay). ``known`` keeps each tenant's webhooks for the next call
    in the same transaction (a group's finish: ``service.job_finish.complete_many``)."""
    now = as_utc(row.finished_at) or utcnow()
    if known is not None and row.tenant_id in known:
        subscribed = known[row.tenant_id]
    else:
        subscribed = session.execute(_SUBSCRIBED, {"webhook_tenant": row.tenant_id}).all()
        if known is not None:
            known[row.tenant_id] = subscribed
    if not subscribed:
        return False
    event = JOB_EVENTS.get(row.status)
    targets = [w.id for w in subscribed if event in w.events]
    if event and targets:
        data = {
            "id": job_id,
            "name": row.name,
            "status": row.status,
            "batch_id": row.batch_id,
            "error": row.error,
            "metrics": row.metrics,
            "created_at": iso(row.created_at),
            "started_at": iso(row.started_at),
            "finished_at": iso(now),
        }
        _insert(session, targets, event, f"{event}:{job_id}", data, now)
    batch_targets = [w.id for w in subscribed if BATCH_COMPLETED in w.events]
    if row.batch_id and batch_targets:
        _batch_completed(session, row.batch_id, batch_targets, now)
    return True


def _batch_completed(session: Session, batch_id: str, targets: list[str], now: datetime) -> None:
    # Lock the batch row: the last two jobs of a batch ending at once take turns here, and
    # the second sees the first's status (a new snapshot per statement on PostgreSQL).
    locked = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.growing.is_(False))
        .values(growing=False)
        .execution_options(synchronize_session=False)
    )
    if not locked.rowcount:  # type: ignore[attr-defined]
        return  # gone, or a search still making trials
    counts = dict(
        session.execute(
            select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
        ).all()
    )
    if any(counts.get(status.value, 0) for status in UNFINISHED):
        return
    name = session.scalar(select(Batch.name).where(Batch.id == batch_id))
    data = {"id": batch_id, "name": name, "counts": counts, "finished_at": iso(now)}
    _insert(session, targets, BATCH_COMPLETED, f"{BATCH_COMPLETED}:{batch_id}", data, now)


def _insert(
    session: Session,
    webhook_ids: Sequence[str],
    event: str,
    key: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    payload = {"type": event, "timestamp": iso(now), "data": finite(data)}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    rows = [
        {
            "id": new_message_id(),
            "webhook_id": webhook_id,
            "event": event,
            "event_key": key,
            "body": body,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for webhook_id in webhook_ids
    ]
    insert = dialect_insert(session)(WebhookDelivery)
    session.execute(insert.on_conflict_do_nothing(index_elements=["webhook_id", "event_key"]), rows)


# --- delivering (the Celery task's side) ---------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    attempt: int
    body: str
    url: str
    secrets: list[str]


def deliver(factory: sessionmaker[Session], delivery_id: str, settings: Settings) -> str:
    """One attempt of one delivery; returns its status afterwards ("skipped" if this
    call did not win the attempt: another is under way, or it is done)."""
    claimed = claim(factory, delivery_id, settings)
    if claimed is None:
        return "skipped"
    started = utcnow()
    try:
        target = webhook_delivery.resolve(claimed.url, allow_private=settings.webhook_allow_private)
    except webhook_delivery.AddressRefused as exc:
        answer = webhook_delivery.Answer(None, str(exc)[:500], 0.0)
    else:
        signed = webhook_delivery.headers(
            claimed.secrets, claimed.delivery_id, int(time.time()), claimed.body
        )
        answer = webhook_delivery.post(
            target, claimed.body, signed, settings.webhook_timeout_seconds
        )
    return record(factory, claimed, answer, started, settings)


def claim(factory: sessionmaker[Session], delivery_id: str, settings: Settings) -> Claimed | None:
    lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 30)
    with transaction(factory) as session:
        now = read_db_now(session)  # every time a delivery is compared with: the database's
        won = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == PENDING,
                # a repeated message must not cut a back-off short (5 s for clock skew)
                WebhookDelivery.next_attempt_at <= now + timedelta(seconds=5),
            )
            .values(status=SENDING, attempts=WebhookDelivery.attempts + 1,
                    lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if not won.rowcount:  # type: ignore[attr-defined]
            return None
        row = session.execute(
            select(
                WebhookDelivery.attempts, WebhookDelivery.body, Webhook.url, Webhook.secret,
                Webhook.previous_secret, Webhook.previous_secret_expires_at,
            )
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.id == delivery_id)
        ).one()  # fmt: skip
    secrets = [row.secret]
    expires = as_utc(row.previous_secret_expires_at)
    if row.previous_secret and expires is not None and expires > now:
        secrets.append(row.previous_secret)
    return Claimed(delivery_id, row.attempts, row.body, row.url, secrets)


def record(
    factory: sessionmaker[Session],
    claimed: Claimed,
    answer: webhook_delivery.Answer,
    started: datetime,
    settings: Settings,
) -> str:
    schedule = retry_schedule(settings)
    with transaction(factory) as session:
        now = read_db_now(session)
        values: dict[str, Any] = {"lease_expires_at": None}
        if answer.ok:
            values.update(status=SUCCEEDED, delivered_at=now)
        elif claimed.attempt > len(schedule):
            values.update(status=FAILED)
        else:
            wait = timedelta(seconds=schedule[claimed.attempt - 1])
            values.update(status=PENDING, next_attempt_at=now + wait, sent_at=None)
        won = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claimed.delivery_id,
                WebhookDelivery.attempts == claimed.attempt,
                WebhookDelivery.status == SENDING,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not won.rowcount:  # type: ignore[attr-defined]
            return "skipped"  # the relay gave the attempt up (lease expired) meanwhile
        session.add(
            WebhookAttempt(
                delivery_id=claimed.delivery_id,
                attempt=claimed.attempt,
                started_at=started,
                duration_seconds=answer.seconds,
                status_code=answer.status_code,
                error=answer.error,
            )
        )
    return str(values["status"])


# --- the relay (each reaper pass) ---------------------------------------------------------


def due(factory: sessionmaker[Session], settings: Settings, limit: int = 200) -> list[str]:
    """Deliveries to send a task for now; each is taken by one relay (compare-and-set on
    ``sent_at``) and taken again only if its task has not run ``requeue_after_seconds``
    later (a lost message)."""
    attempts = 1 + len(retry_schedule(settings))
    with transaction(factory) as session:
        now = read_db_now(session)
        resend = now - timedelta(seconds=settings.requeue_after_seconds)
        abandoned = and_(WebhookDelivery.status == SENDING, WebhookDelivery.lease_expires_at < now)
        for more, values in (
            (WebhookDelivery.attempts < attempts, {"status": PENDING, "sent_at": None}),
            (WebhookDelivery.attempts >= attempts, {"status": FAILED}),
        ):
            session.execute(
                update(WebhookDelivery)
                .where(abandoned, more)
                .values(lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.sent_at)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.sent_at.is_(None), WebhookDelivery.sent_at < resend),
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        taken = []
        for delivery_id, seen in rows:
            same = (
                WebhookDelivery.sent_at.is_(None)
                if seen is None
                else WebhookDelivery.sent_at == seen
            )
            won = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == PENDING, same)
                .values(sent_at=now)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount:  # type: ignore[attr-defined]
                taken.append(delivery_id)
    return taken
