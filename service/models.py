"""The database schema (SQLAlchemy 2.0 typed models).

The database is the source of truth for every job: its status, lease, attempt (the
fencing token), curve points and checkpoint. See README "Job lifecycle".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from service.schemas.names import METRICS, SUMMARY_STATS, JobStatus, Queue
from service.schemas.records import NUMERIC_FIELDS
from service.timeutil import utcnow


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Owned:
    """A tenant's row, listed newest first (keyset pages over created_at and id)."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Idempotent:
    """Created by a request that may carry an Idempotency-Key (``service.idempotency``)."""

    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))


def idempotent_owned_keys(table: str) -> tuple[Any, ...]:
    """One Idempotency-Key per tenant, and the index of a tenant's rows newest first."""
    return (
        UniqueConstraint("tenant_id", "idempotency_key", name=f"uq_{table}_tenant_idempotency"),
        Index(f"ix_{table}_tenant_created", "tenant_id", "created_at", "id"),
    )


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __repr__(self) -> str:
        return f"Tenant({self.name!r})"


class ApiKey(Base):
    """An API key, stored only as its SHA-256 hash; ``prefix`` names it in ``list-keys``."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written at most once a minute per key and API process (service.keycache), not per request.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"ApiKey({self.prefix}…)"


class DatasetBlob(Base):
    """Dataset arrays as NPZ bytes, content-addressed so any worker host can load and cache them."""

    __tablename__ = "dataset_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Owned, Base):
    __tablename__ = "datasets"
    __table_args__ = (
        Index("ix_datasets_tenant_created", "tenant_id", "created_at", "id"),
        # One inline dataset per content and tenant (service.datasets.store_inline); uploads
        # leave content_key NULL, and NULLs never conflict.
        Index("uq_datasets_tenant_content", "tenant_id", "content_key", unique=True),
    )

    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(20))  # classification | regression
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_outputs: Mapped[int] = mapped_column(Integer)
    classes: Mapped[list[Any] | None] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(ForeignKey("dataset_blobs.sha256"), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # An inline dataset's bytes, task and classes (service.datasets.content_key); NULL for
    # uploads, which may repeat the same data under other names.
    content_key: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {self.n_samples}x{self.n_features}, {self.task})"


class Batch(Owned, Idempotent, Base):
    __tablename__ = "batches"
    __table_args__ = idempotent_owned_keys("batches")

    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    varied: Mapped[list[Any]] = mapped_column(JSON)  # the dotted paths that vary
    # A TPE search still creating trials (service.searches); cancel and the last trial end it.
    growing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    def __repr__(self) -> str:
        return f"Batch({self.name!r})"


class Job(Owned, Idempotent, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        *idempotent_owned_keys("jobs"),
        Index("ix_jobs_batch", "batch_id", "created_at"),
        # A job's position in its batch: the stable order of batch summaries and curve cursors.
        UniqueConstraint("batch_id", "batch_index", name="uq_jobs_batch_index"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        # The dispatcher's reads: each tenant's queued jobs, oldest first (service.dispatch).
        Index("ix_jobs_status_tenant", "status", "tenant_id", "created_at"),
    )

    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued.value)
    queue: Mapped[str] = mapped_column(String(20), default=Queue.interactive.value)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # validated, defaults filled in
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # varied values in a batch
    # Where a batch job's spec came from: {"kind": grid|random|jobs|tpe|pbt, ...}.
    origin: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    epochs: Mapped[int] = mapped_column(Integer)  # planned epochs
    epoch: Mapped[int] = mapped_column(Integer, default=0)  # last epoch persisted
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # latest curve point
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    gradient_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Fencing token: bumped by every claim; every write of a run checks it.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Claims that ended in a warm-shutdown hand-over: they count toward the fencing token
    # but not toward max_attempts, which caps only runs that were lost (attempt - releases).
    releases: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped on every write, so ETags change exactly when the representation does.
    version: Mapped[int] = mapped_column(Integer, default=1)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The submitting request's id: every send of the job carries it to the worker's log
    # lines, whoever sends it (the API, another run's dispatch pass, the reaper).
    request_id: Mapped[str | None] = mapped_column(String(128))
    # Estimated engine work at submission (service.budgets.run_work); a job at most
    # DELTAFLOW_GROUP_WORK shares its message with other tiny jobs (service.dispatch), and
    # ``dispatch_group`` names that message (a pass counts a group as one slot).
    work: Mapped[int | None] = mapped_column(BigInteger)
    dispatch_group: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Written with the curve (service.summaries); loaded with the job for its ``summary``.
    summary_row: Mapped[JobSummary | None] = relationship(lazy="selectin", viewonly=True)

    def __repr__(self) -> str:
        return f"Job({self.id[:8]} {self.status} {self.epoch}/{self.epochs} attempt={self.attempt})"


class CurvePoint(Base):
    """One epoch of one job. The primary key makes a duplicate epoch impossible."""

    __tablename__ = "curve_points"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    train_accuracy: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    activation_stats: Mapped[list[Any] | None] = mapped_column(JSON)


def summary_column(metric: str, stat: str) -> str:
    """``job_summaries``' column for one stat of one metric, e.g. ``val_loss_min``."""
    return f"{metric}_{stat}"


# Stats worth an index (filters and orderings on them use it); argmin/argmax epochs are not.
INDEXED_STATS = ("min", "max", "last")


class JobSummary(Base):
    """Per job, for each metric: min, max, last value and the epochs of the min and max.

    Written in the same transaction as the curve points it sums up (service.summaries),
    so filters and orderings read this row, never the curve. ``epoch`` is the last epoch
    merged in. Columns are generated from ``names.METRICS`` x ``names.SUMMARY_STATS``.
    """

    __table__ = Table(
        "job_summaries",
        Base.metadata,
        Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        Column("tenant_id", String(32), nullable=False),
        Column("epoch", Integer, nullable=False),
        *(
            Column(summary_column(m, s), Integer if s.endswith("epoch") else Float, nullable=True)
            for m in METRICS
            for s in SUMMARY_STATS
        ),
        *(
            Index(
                f"ix_job_summaries_{summary_column(m, s)}",
                "tenant_id",
                summary_column(m, s),
                "job_id",
            )
            for m in METRICS
            for s in INDEXED_STATS
        ),
    )

    job_id: Mapped[str]
    epoch: Mapped[int]

    def __repr__(self) -> str:
        return f"JobSummary({self.job_id[:8]} to epoch {self.epoch})"


# Stored levels of every curve (service.curves): per block of LEVEL_BASE**level epochs,
# the first and last epoch stored and, for each number of a point, its minimum and maximum
# with the epoch of each (the earliest on a tie). Written with the points they summarize;
# a downsampled curve reads blocks, not points.
curve_levels = Table(
    "curve_levels",
    Base.metadata,
    Column("job_id", ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("block", Integer, primary_key=True),
    Column("first_epoch", Integer, nullable=False),
    Column("last_epoch", Integer, nullable=False),
    *(
        Column(f"{name}_{stat}", Integer if stat.endswith("epoch") else Float)
        for name in NUMERIC_FIELDS
        for stat in ("min", "min_epoch", "max", "max_epoch")
    ),
)


class Checkpoint(Base):
    """The latest resumable state of a run: weights, optimizer and generator state, epoch."""

    __tablename__ = "checkpoints"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Copied from another trial by a PBT exploit: the run takes its weights and optimizer
    # state but its own spec's hyperparameters (Trainer.adopt_state_bytes).
    adopted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class TrialDecision(Base):
    """What a batch's scheduler decided at one report of a trial: taken once, it stands.

    ``generation`` counts the trial's exploits before the report (after an exploit a trial
    may report an epoch again, from another's checkpoint)."""

    __tablename__ = "trial_decisions"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # continue | stop | exploit
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainedModel(Base):
    """The final weights (NPZ bytes) with what prediction needs: classes and standardization."""

    __tablename__ = "trained_models"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MetricCount(Base):
    """A counter kept for ``GET /metrics`` (``service.counters``), written in the same
    transaction as what it counts, so it survives restarts and sums over every host.

    ``labels`` is the canonical ``k=v,k=v`` text; ``shard`` spreads concurrent writers
    over a few rows (a run always writes its own shard), and a scrape sums the shards."""

    __tablename__ = "metric_counts"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    labels: Mapped[str] = mapped_column(String(200), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class WorkerHeartbeat(Base):
    """A worker's main process, seen by its reaper every pass: ``deltaflow_workers_alive``."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Its pool's slots: the capacity the dispatcher fills (service.dispatch); None counts 1.
    slots: Mapped[int | None] = mapped_column(Integer)


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


class Webhook(Owned, Base):
    """A tenant's subscription: where to POST which events, signed with ``secret``
    (``service.webhooks``). After a rotation the previous secret also signs for a while."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_created", "tenant_id", "created_at", "id"),)

    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"Webhook({self.url!r}, {self.events})"


class WebhookDelivery(Base):
    """The outbox: one event for one webhook, inserted in the transaction of the change it
    reports; ``id`` is the ``webhook-id`` header (the same on every attempt)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per event per webhook (a batch's completion may be seen twice).
        UniqueConstraint("webhook_id", "event_key", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_message_id)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    event_key: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # task sent
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"WebhookDelivery({self.id} {self.event} {self.status} attempts={self.attempts})"


class WebhookAttempt(Base):
    """One try of a delivery: when, how long, the receiver's status or the error."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))


class TenantQuota(Base):
    """A tenant's quotas set by ``deltaflow set-quota`` (``service.quotas``): NULL takes the
    ``DELTAFLOW_QUOTA_*`` default, -1 is unlimited."""

    __tablename__ = "tenant_quotas"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    max_queued_jobs: Mapped[int | None] = mapped_column(BigInteger)
    max_running_jobs: Mapped[int | None] = mapped_column(BigInteger)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DispatcherLock(Base):
    """The one row every dispatch pass locks first (an UPDATE): passes run one at a time,
    and a pass that dies mid-way releases it with its transaction."""

    __tablename__ = "dispatcher"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    passes: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str | None] = mapped_column(String(200))
    pass_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
