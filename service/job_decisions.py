"""A scheduler's decisions on a trial, inside its run's flush (``job_progress.flush``'s
``decide``; see ``service.schedulers.reports``): ``stop_trial`` ends it ``cancelled``,
``exploit`` (PBT) sends it back to ``queued`` to resume from its parent's checkpoint.
Both are fenced by the run's attempt. See ``service.job_writes`` for the rules every
write follows.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service import curve_store, summaries
from service.job_writes import fenced, finish_job, save_checkpoint, write_job
from service.models import Checkpoint, Job
from service.schemas.names import JobStatus


def stop_trial(session: Session, job_id: str, attempt: int, now: datetime) -> bool:
    """A scheduler stopped the run's trial: it ends ``cancelled`` (fenced)."""
    return finish_job(session, job_id, attempt, JobStatus.cancelled, None, now)


def exploit(
    session: Session, job_id: str, attempt: int, parent_id: str, spec: dict[str, Any],
    params: dict[str, Any], origin: dict[str, Any], now: datetime,
) -> int | None:  # fmt: skip
    """PBT: the trial takes the parent's latest checkpoint (``adopted``) and its explored
    ``spec``, and goes back to ``queued`` to resume from it (a release, not a lost run);
    its curve goes on from the copied epoch (``curve_store.continue_from``). Returns that epoch,
    or None if the fence was lost or the parent has no checkpoint."""
    saved = session.execute(
        select(Checkpoint.epoch, Checkpoint.state).where(Checkpoint.job_id == parent_id)
    ).one_or_none()
    last = session.scalar(select(Job.epoch).where(Job.id == job_id))
    if saved is None or last is None:
        return None
    origin = {**origin, "epoch": saved.epoch}
    moved = {"spec": spec, "params": params, "origin": origin, "epochs": spec["training"]["epochs"]}
    if not write_job(
        session, fenced(job_id, attempt), status=JobStatus.queued.value,
        releases=Job.releases + 1, lease_owner=None, lease_expires_at=None, dispatched_at=None,
        epoch=saved.epoch, updated_at=now, version=Job.version + 1, **moved,
    ):  # fmt: skip
        return None
    point = curve_store.continue_from(session, job_id, parent_id, last, saved.epoch)
    summaries.rebuild(session, job_id)
    write_job(session, Job.id == job_id, metrics=point)
    save_checkpoint(session, job_id, attempt, (saved.epoch, saved.state), now, adopted=True)
    return int(saved.epoch)
