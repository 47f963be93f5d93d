"""Job commands and queries: create, submit, read, list, cancel, delete.

Functions take a session and return models or raise ``service.problems`` errors.
``create_job`` validates (``service.validation``), adds and flushes (a batch creates many
jobs in one transaction); ``submit_job`` adds the Idempotency-Key handling, commits and
dispatches. Writes to the job row are ``service.job_transitions``' compare-and-sets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Engine,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from service import idempotency, job_transitions, logs, quotas, search
from service.config import Limits
from service.cursors import paginate
from service.db import first_row
from service.dispatch import Dispatcher
from service.models import Job, new_id
from service.problems import Conflict, Invalid, Loc, NotFound, QuotaExceeded
from service.quotas import QuotaLimits
from service.schemas.names import FINISHED, JobStatus, Queue
from service.schemas.spec import JobSpec
from service.validation import parse_spec, validate_spec

# --- creating ------------------------------------------------------------------------


def create_job(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    name: str | None = None,
    batch_id: str | None = None,
    queue: str = Queue.interactive.value,
    params: dict[str, Any] | None = None,
    *,
    limits: Limits | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    loc: Loc = ("body",),
    quota: QuotaLimits | None = None,
    flush: bool = True,
) -> Job:
    """Validate one job spec and add it as ``queued``. Flushes (unless ``flush=False``: a
    batch adds all its jobs, then flushes once — one INSERT each cost more than
    validating it); never commits or dispatches. The job's id is set at once either way.

    Raises ``Invalid`` (422, with field locations) before anything is added. Inline data
    is stored as a content-addressed dataset the spec names (``validation.validate_spec``);
    a new one is counted against ``quota``'s storage (429).
    """
    canonical, dataset_id, work = validate_spec(
        session, tenant_id, spec, limits or Limits(), loc, store_inline=True, quota=quota
    )
    job = Job(
        id=new_id(),
        tenant_id=tenant_id,
        batch_id=batch_id,
        dataset_id=dataset_id,
        name=name or default_name(canonical),
        status=JobStatus.queued.value,
        queue=str(queue),
        spec=canonical,
        params=params,
        epochs=canonical["training"]["epochs"],
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        request_id=logs.current("request_id"),
        work=work,
    )
    session.add(job)
    if flush:
        session.flush()
    return job


def default_name(spec: Mapping[str, Any]) -> str:
    """A readable name such as ``spirals 8-8 tanh adam``."""
    ds = spec["dataset"]
    source = ds.get("generator") or (
        "dataset " + ds["id"][:8] if "id" in ds and not ds.get("inline") else "inline"
    )
    layers = spec["network"]["layers"]
    hidden = "-".join(str(layer["units"]) for layer in layers) or "linear"
    acts = sorted({layer["activation"] for layer in layers})
    parts = [source, hidden, *acts, spec["training"]["optimizer"]["name"]]
    return " ".join(parts)[:200]


def submit_job(
    session: Session,
    tenant_id: str,
    spec: JobSpec | Mapping[str, Any],
    name: str | None,
    limits: Limits,
    idempotency_key: str | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    quota: QuotaLimits | None = None,
) -> tuple[Job, bool]:
    """Create and COMMIT one job, then run a dispatch pass; return (job, created).

    With an Idempotency-Key, a repeat of the same body returns the first job (created False),
    a different body is 422, and concurrent repeats create one job (``service.idempotency``).
    The pass sends the job if a worker slot is free and it is its tenant's turn; else it
    waits ``queued`` for a later pass (``service.dispatch``). Without ``dispatcher`` the
    job waits for the reaper's pass. Over the tenant's ``max_queued_jobs``: 429, nothing
    stored (``service.quotas``).
    """
    model = parse_spec(spec)
    fingerprint = idempotency.fingerprint({"name": name, **model.model_dump(mode="json")})
    if idempotency_key:
        existing = idempotency.find(session, Job, tenant_id, idempotency_key)
        if existing is not None:
            return idempotency.replay(existing, fingerprint), False
    try:
        # The unique (tenant, key) constraint can fire at the flush or at the commit.
        job = create_job(
            session,
            tenant_id,
            model,
            name=name,
            limits=limits,
            idempotency_key=idempotency_key,
            request_hash=fingerprint if idempotency_key else None,
            quota=quota,
        )
        if quota is not None:
            quotas.admit_queued(session, tenant_id, quota, added=1)
        session.commit()
    except (QuotaExceeded, Invalid):
        session.rollback()  # an inline dataset stored for it goes too
        raise
    except IntegrityError:
        session.rollback()
        if not idempotency_key:
            raise
        winner = idempotency.find(session, Job, tenant_id, idempotency_key)
        if winner is None:
            raise
        return idempotency.replay(winner, fingerprint), False
    if dispatcher is not None and job.id in dispatcher.run(session):
        session.refresh(job)  # recording the dispatch bumped the version (the ETag)
    return job, True


# --- state changes -------------------------------------------------------------------


def cancel_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """queued → cancelled at once; running → cancelling (the run stops at its next flush).

    Cancelling twice is harmless; a finished job answers 409. Commits.
    """
    job = get_job(session, tenant_id, job_id)
    for _ in range(5):  # the status may move under us; each loop re-reads it
        status = job.status
        if status == JobStatus.cancelling:
            return job
        if status not in (JobStatus.queued, JobStatus.running):
            raise Conflict(f"job {job.id} is already {status}")
        won = job_transitions.request_cancel(session, job.id, status)
        session.commit()
        session.refresh(job)
        if won:
            return job
    raise Conflict(f"job {job.id} changed state while cancelling; try again")


def delete_job(session: Session, tenant_id: str, job_id: str) -> None:
    """Delete a finished job with its curve, checkpoint and model (FK cascade). Commits."""
    job = get_job(session, tenant_id, job_id)
    if job.status not in FINISHED:
        raise Conflict(f"job {job.id} is {job.status}; cancel it and wait until it finishes")
    session.expunge(job)
    result = session.execute(
        delete(Job)
        .where(Job.id == job.id, Job.status.in_([s.value for s in FINISHED]))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict(f"job {job.id} changed state; try again")
    session.commit()


# --- reading -------------------------------------------------------------------------


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; another tenant's id is reported exactly like a missing one."""
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(
    session: Session,
    tenant_id: str,
    status: str | None,
    batch_id: str | None,
    limit: int | None,
    cursor: str | None,
    max_limit: int,
    filter_text: str | None = None,
    order_by: str | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the tenant's jobs, filtered, newest first (or by ``order_by``), and the
    next page's cursor; ``filter_text`` and ``order_by`` are ``service.search``'s grammar.

    The specs are not loaded (``defer``): a list shows each one through ``list_specs``."""
    query = select(Job).options(defer(Job.spec)).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if batch_id:
        query = query.where(Job.batch_id == batch_id)
    if filter_text or order_by:
        return search.page(session, query, filter_text, order_by, limit, cursor, max_limit)
    return paginate(session, query, Job, limit, cursor, max_limit)


# An inline dataset's X and y (up to inline_samples rows) are in its job's spec; a list
# never carries them (issue 11: five such jobs made GET /jobs 147 MB). The database drops
# them, so they are not even read: the job's own GET /jobs/{id} has the whole spec.
INLINE_OMITTED = "X and y omitted in lists: GET /jobs/{id}"


def list_specs(session: Session, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each job's spec without an inline dataset's arrays (``dataset.inline`` says so)."""
    if not job_ids:
        return {}
    light: ColumnElement[Any]
    inline: ColumnElement[bool]
    if session.get_bind().dialect.name == "postgresql":
        # json_each copies values as text; a cast to jsonb would convert every number of
        # the arrays (measured: 2.9 against 5.0 s for five 4 MB specs on a loaded VM).
        light = literal_column(
            "(SELECT json_object_agg(t.key, CASE WHEN t.key = 'dataset' THEN"
            " (SELECT json_object_agg(d.key, d.value) FROM json_each(t.value) d"
            " WHERE d.key NOT IN ('X', 'y')) ELSE t.value END) FROM json_each(jobs.spec) t)",
            JSON,
        )
        inline = literal_column("(json_typeof(jobs.spec->'dataset'->'X') IS NOT NULL)", Boolean)
    else:
        light = func.json_remove(Job.spec, "$.dataset.X", "$.dataset.y", type_=JSON)
        inline = func.json_type(Job.spec, "$.dataset.X").is_not(None)
    rows = session.execute(select(Job.id, light, inline).where(Job.id.in_(job_ids)))
    specs: dict[str, dict[str, Any]] = {}
    for job_id, spec, has_arrays in rows:
        if has_arrays:
            spec["dataset"]["inline"] = INLINE_OMITTED
        specs[job_id] = spec
    return specs


@dataclass(frozen=True)
class JobHead:
    """What a poll needs of a job and no more: enough for its ETag, and for telling that a
    curve has nothing after ``epoch`` (the last stored epoch; it only moves forward)."""

    id: str
    status: str
    epoch: int
    version: int


_HEAD = select(Job.id, Job.status, Job.epoch, Job.version).where(
    Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id")
)


def job_head(reads: Engine, tenant_id: str, job_id: str) -> JobHead:
    """The tenant's job's head in one primary-key read on the driver's cursor
    (``db.first_row``: no ORM object, no Session); another tenant's id is reported
    exactly like a missing one. ``reads`` is an autocommit engine: one round trip."""
    row = first_row(reads, _HEAD, {"job_id": job_id, "tenant_id": tenant_id})
    if row is None:
        raise NotFound(f"no job {job_id}")
    return JobHead(*row)


def etag(job: Job | JobHead, kind: str = "job") -> str:
    """An entity tag (unquoted) that changes exactly when the job row is written."""
    return f"{kind}-{job.id}-{job.version}"


def page_etag(page: Sequence[Job], next_cursor: str | None, query: str) -> str:
    """An entity tag of a list page: changes when a job on it is written, one comes or goes,
    or the next page moves (every write bumps ``jobs.version``). ``query`` is the request's."""
    rows = ",".join(f"{job.id}:{job.version}" for job in page)
    text = f"{rows}|{next_cursor}|{query}"
    return f"jobs-{hashlib.sha256(text.encode()).hexdigest()[:24]}"
