"""A run takes its job: the claim, a compare-and-set that bumps ``attempt`` (the fencing
token every later write of the run matches) and sets a lease, returning in the same
statement what the run needs (``Claim``). See ``service.job_writes`` for the rules every
write follows.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, case, or_, select, update

from service.clock import db_after, db_now
from service.db import transaction
from service.job_writes import JOBS, SessionFactory
from service.models import Batch, Checkpoint, Job
from service.schemas.names import JobStatus


@dataclass(frozen=True)
class Claim:
    """What a run needs after it won its job; ``attempt`` fences all its writes."""

    job_id: str
    attempt: int
    owner: str
    tenant_id: str
    queue: str
    spec: dict[str, Any]
    epochs: int
    checkpoint_epoch: int | None = None
    checkpoint: bytes | None = field(default=None, repr=False)
    batch_id: str | None = None
    batch_index: int | None = None
    checkpoint_adopted: bool = False  # copied from another trial (PBT): adopt, not resume
    # The batch's spec, varied paths and whether its search still grows, read with the
    # claim so that a trial's run needs no read of its own for them.
    batch_spec: dict[str, Any] | None = field(default=None, repr=False)
    batch_varied: list[Any] | None = field(default=None, repr=False)
    batch_growing: bool = False
    request_id: str | None = None  # the submitting request's, for the run's log lines


def claim(
    factory: SessionFactory,
    job_id: str,
    owner: str,
    *,
    lease_seconds: float,
    max_attempts: int,
    now: datetime | None = None,
) -> Claim | None:
    """Take the job if it is queued, or running with an expired lease; None if taken.

    The reclaim of an expired lease is refused once ``max_attempts`` runs were lost
    (claims minus warm-shutdown releases): the reaper then fails the job instead (a poison
    pill never loops). Leases are on the database's clock (``service.clock``) unless the
    caller fixes ``now`` (tests).
    """
    if now is None:  # the database's clock: the statement is built once per settings
        take = _take_on_db_clock(lease_seconds, max_attempts)
    else:
        take = _take(now + timedelta(seconds=lease_seconds), now, max_attempts)
    who = {"claim_jobs": [job_id], "claim_owner": owner}
    with transaction(factory) as session:
        # The claim and its read are one statement (the compare-and-set RETURNING the job).
        row = session.execute(take, who).one_or_none()
        if row is None:
            return None
        saved = _checkpoints(session, [row])
    return _claim(row, owner, saved.get(job_id))


def claim_many(
    factory: SessionFactory,
    job_ids: list[str],
    owner: str,
    *,
    lease_seconds: float,
    max_attempts: int,
) -> list[Claim]:
    """``claim`` for the jobs of one message (a group of tiny jobs: ``service.dispatch``),
    in one statement and one commit; the ones taken, in the order given."""
    take = _take_on_db_clock(lease_seconds, max_attempts)
    who = {"claim_jobs": list(job_ids), "claim_owner": owner}
    with transaction(factory) as session:
        rows = session.execute(take, who).all()
        saved = _checkpoints(session, rows)
    order = {job_id: index for index, job_id in enumerate(job_ids)}
    rows = sorted(rows, key=lambda row: order[row.id])
    return [_claim(row, owner, saved.get(row.id)) for row in rows]


def _checkpoints(session: Any, rows: Any) -> dict[str, Any]:
    """The checkpoints of the claimed jobs that may have one: only a run after another
    (resumed, released or exploited) can find one, so a first claim reads nothing."""
    later = [row.id for row in rows if row.attempt > 1]
    if not later:
        return {}
    found = session.execute(
        select(Checkpoint.job_id, Checkpoint.epoch, Checkpoint.state, Checkpoint.adopted).where(
            Checkpoint.job_id.in_(later)
        )
    )
    return {saved.job_id: saved for saved in found}


def _claim(row: Any, owner: str, saved: Any) -> Claim:
    return Claim(
        job_id=row.id,
        attempt=row.attempt,
        owner=owner,
        tenant_id=row.tenant_id,
        queue=row.queue,
        spec=row.spec,
        epochs=row.epochs,
        checkpoint_epoch=saved.epoch if saved else None,
        checkpoint=saved.state if saved else None,
        batch_id=row.batch_id,
        batch_index=row.batch_index,
        checkpoint_adopted=bool(saved and saved.adopted),
        batch_spec=row.batch_spec,
        batch_varied=row.varied,
        batch_growing=bool(row.growing),
        request_id=row.request_id,
    )


@lru_cache(maxsize=8)
def _take_on_db_clock(lease_seconds: float, max_attempts: int) -> Any:
    """The claim on the database's clock, built once per lease and cap (they are settings):
    constructing it anew cost a noticeable part of a tiny job's CPU."""
    return _take(db_after(lease_seconds), db_now(), max_attempts)


def _take(lease_end: Any, now: Any, max_attempts: int) -> Any:
    """The claim's compare-and-set (job ids and owner bound: ``claim_jobs``, a list, and
    ``claim_owner``), returning each job taken and its batch's columns."""
    claimable = or_(
        Job.status == JobStatus.queued.value,
        and_(
            Job.status == JobStatus.running.value,
            Job.lease_expires_at < now,
            Job.attempt - Job.releases < max_attempts,
        ),
    )
    batch = _batch_column  # the job's batch: its spec, varied paths and growth
    return (
        update(JOBS)
        .where(Job.id.in_(bindparam("claim_jobs", type_=Job.id.type, expanding=True)), claimable)
        .values(
            status=JobStatus.running.value,
            attempt=Job.attempt + 1,
            lease_owner=bindparam("claim_owner", type_=Job.lease_owner.type),
            lease_expires_at=lease_end,
            started_at=case((Job.started_at.is_(None), now), else_=Job.started_at),
            updated_at=now,
            version=Job.version + 1,
        )
        .returning(
            Job.id,
            Job.attempt,
            Job.tenant_id,
            Job.queue,
            Job.spec,
            Job.epochs,
            Job.batch_id,
            Job.batch_index,
            Job.request_id,
            batch(Batch.spec).label("batch_spec"),
            batch(Batch.varied).label("varied"),
            batch(Batch.growing).label("growing"),
        )
        .execution_options(synchronize_session=False)
    )


def _batch_column(column: Any) -> Any:
    """``column`` of the job's batch, as a scalar subquery of a statement on ``jobs``."""
    return select(column).where(Batch.id == Job.batch_id).correlate(Job).scalar_subquery()
