"""Batch schedulers: stop the jobs of a sweep that fall behind.

A scheduler is a class behind one interface (``base.Scheduler``): given a batch's state —
its running jobs and the curve points they reported — it decides which jobs to stop.
``run`` is one pass of every batch's scheduler; each worker's reaper runs it (the
scheduler is not the batch API). What a scheduler decided is kept in
``batches.scheduler_state``. A new scheduler: a spec in ``schemas.batch``, its name in
``schemas.names.SchedulerName``, a module here, and its entry in ``SCHEDULERS``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.models import Batch, Job
from service.schedulers.asha import Asha
from service.schedulers.base import Scheduler, record_stops
from service.schemas.names import JobStatus

SCHEDULERS: dict[str, Scheduler] = {scheduler.name: scheduler for scheduler in (Asha(),)}


def run(factory: sessionmaker[Session]) -> list[str]:
    """One pass of every scheduler over the batches with running jobs; returns the ids of
    the jobs it stopped. Decisions are compare-and-sets (the jobs domain's cancel), so the
    reapers of many workers may run passes at once."""
    stopped: list[str] = []
    with factory() as session:
        batch_ids = session.scalars(
            select(Job.batch_id)
            .where(Job.status == JobStatus.running.value, Job.batch_id.is_not(None))
            .distinct()
        ).all()
        if not batch_ids:
            return stopped
        for batch in session.scalars(select(Batch).where(Batch.id.in_(batch_ids))).all():
            config = batch.spec.get("scheduler")
            scheduler = SCHEDULERS.get(config.get("name", "")) if config else None
            if scheduler is not None and config is not None:
                decisions = scheduler.decide(session, batch.id, config)
                stopped.extend(record_stops(session, batch.id, decisions))
    return stopped
