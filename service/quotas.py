"""Per-tenant quotas: queued jobs and stored bytes are admitted or refused; running jobs
are a concurrency limit the dispatcher keeps (``service.dispatch``).

Defaults come from ``DELTAFLOW_QUOTA_MAX_QUEUED_JOBS``, ``..._MAX_RUNNING_JOBS`` and
``..._MAX_STORAGE_BYTES`` (unset: unlimited); ``deltaflow set-quota`` stores a tenant's own
(``tenant_quotas``: NULL takes the default, -1 is unlimited).

Admission is checked *after* the new rows are added and before the commit, with the
tenant's quota lock held (PostgreSQL: a transaction-level advisory lock per tenant; SQLite:
the write the insert began holds the database's write lock): concurrent submits cannot
both slip under a limit, and a refused submit rolls back whole — a batch is admitted whole
or not at all, an upload stores nothing.

Kernel code: no Flask, no Celery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.models import Dataset, Job, Tenant, TenantQuota
from service.problems import NotFound, QuotaExceeded
from service.schemas.names import ACTIVE, JobStatus
from service.timeutil import utcnow

NAMES = ("max_queued_jobs", "max_running_jobs", "max_storage_bytes")
UNLIMITED = -1  # stored by set-quota to lift a default for one tenant


@dataclass(frozen=True)
class QuotaLimits:
    """A tenant's limits in force; None = unlimited."""

    max_queued_jobs: int | None = None
    max_running_jobs: int | None = None
    max_storage_bytes: int | None = None

    @classmethod
    def defaults(cls, settings: Settings) -> QuotaLimits:
        return cls(
            settings.quota_max_queued_jobs,
            settings.quota_max_running_jobs,
            settings.quota_max_storage_bytes,
        )

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def effective(own: int | None, default: int | None) -> int | None:
    if own is None:
        return default
    return None if own == UNLIMITED else own


def limits_for(session: Session, tenant_id: str, defaults: QuotaLimits) -> QuotaLimits:
    """The tenant's limits: its own where set, else the defaults."""
    own = session.get(TenantQuota, tenant_id)
    if own is None:
        return defaults
    return QuotaLimits(*(effective(getattr(own, name), getattr(defaults, name)) for name in NAMES))


def usage(session: Session, tenant_id: str) -> dict[str, int]:
    """What the tenant uses now: queued and running jobs, stored dataset bytes."""
    counts = dict(
        session.execute(
            select(Job.status, func.count())
            .where(Job.tenant_id == tenant_id, Job.status.in_([JobStatus.queued.value, *ACTIVE]))
            .group_by(Job.status)
        ).all()
    )
    return {
        "queued_jobs": int(counts.get(JobStatus.queued.value, 0)),
        "running_jobs": int(sum(counts.get(status, 0) for status in ACTIVE)),
        "storage_bytes": _stored_bytes(session, tenant_id),
    }


def describe(session: Session, tenant_id: str, defaults: QuotaLimits) -> dict[str, Any]:
    """``GET /quota``: ``{limits, usage}``."""
    return {
        "limits": limits_for(session, tenant_id, defaults).as_dict(),
        "usage": usage(session, tenant_id),
    }


# --- admission (after the insert, before the commit) ----------------------------------------


def admit_queued(session: Session, tenant_id: str, defaults: QuotaLimits, added: int) -> None:
    """Refuse (429, nothing kept once the caller rolls back) if the tenant's queued jobs,
    the ``added`` ones flushed in this transaction included, exceed ``max_queued_jobs``."""
    limit = limits_for(session, tenant_id, defaults).max_queued_jobs
    if limit is None:
        return
    _lock_tenant(session, tenant_id)
    queued = session.scalar(
        select(func.count()).where(Job.tenant_id == tenant_id, Job.status == JobStatus.queued.value)
    )
    if int(queued or 0) > limit:
        before = int(queued or 0) - added
        raise QuotaExceeded(
            "max_queued_jobs",
            f"the tenant may have at most {limit} queued jobs; it has {before} and this "
            f"request adds {added}. Nothing was stored: wait for jobs to start, or cancel some",
        )


def admit_storage(session: Session, tenant_id: str, defaults: QuotaLimits, added: int) -> None:
    """Refuse if the tenant's stored dataset bytes, the flushed new dataset's ``added``
    included, exceed ``max_storage_bytes``."""
    limit = limits_for(session, tenant_id, defaults).max_storage_bytes
    if limit is None:
        return
    _lock_tenant(session, tenant_id)
    stored = _stored_bytes(session, tenant_id)
    if stored > limit:
        raise QuotaExceeded(
            "max_storage_bytes",
            f"the tenant may store at most {limit} bytes of datasets; it stores "
            f"{stored - added} and this upload adds {added}. Nothing was stored: delete "
            "datasets it no longer needs",
        )


def _stored_bytes(session: Session, tenant_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.tenant_id == tenant_id)
    )
    return int(total or 0)


def _lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise admission per tenant until the transaction ends (PostgreSQL; SQLite's
    write lock is already held by the insert before the check)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(func.pg_advisory_xact_lock(func.hashtext("deltaflow-quota:" + tenant_id)))
        )


# --- set-quota ---------------------------------------------------------------------------------


def set_quota(session: Session, tenant_name: str, values: dict[str, int | None]) -> dict[str, Any]:
    """Store the tenant's own quotas (``values``: name → N, -1 for unlimited, None to take
    the default again); other names keep what they were. Commits."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"no tenant {tenant_name!r}")
    own = session.get(TenantQuota, tenant.id)
    if own is None:
        own = TenantQuota(tenant_id=tenant.id)
        session.add(own)
    for name, value in values.items():
        if name not in NAMES:
            raise ValueError(name)
        setattr(own, name, value)
    own.updated_at = utcnow()
    session.commit()
    return {name: getattr(own, name) for name in NAMES}
