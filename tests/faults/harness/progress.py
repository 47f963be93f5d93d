"""Watching jobs through the database: how far they got, and waiting until they finish.

Faults are injected at a point of *progress* (e.g. half of all epochs persisted), never
after a guessed sleep, so the scenarios do not depend on the machine's speed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.models import Job
from service.schemas.names import FINISHED

from .waiting import wait_until


def statuses(factory: sessionmaker[Session], job_ids: Sequence[str]) -> dict[str, str]:
    with factory() as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids))).all()
    return {row.id: row.status for row in rows}


def persisted_epochs(factory: sessionmaker[Session], job_ids: Sequence[str]) -> int:
    """Sum of the last persisted epoch over the jobs."""
    with factory() as session:
        total = session.scalar(select(func.sum(Job.epoch)).where(Job.id.in_(job_ids)))
    return int(total or 0)


def job_row(factory: sessionmaker[Session], job_id: str) -> Job:
    with factory() as session:
        job = session.get(Job, job_id)
        assert job is not None, f"job {job_id} is not in the database"
        session.expunge(job)
        return job


def summary(factory: sessionmaker[Session], job_ids: Sequence[str]) -> str:
    """One line per job for timeout messages: what state was everything in?"""
    with factory() as session:
        jobs = session.scalars(select(Job).where(Job.id.in_(job_ids))).all()
        return "\n".join(repr(job) + f" owner={job.lease_owner}" for job in jobs)


def wait_for_epochs(
    factory: sessionmaker[Session], job_ids: Sequence[str], total: int, timeout: float
) -> int:
    """Until at least ``total`` epochs are persisted over the jobs; returns the sum seen."""
    return wait_until(
        lambda: (n := persisted_epochs(factory, job_ids)) >= total and n,
        timeout,
        f"{total} persisted epochs",
        describe=lambda: summary(factory, job_ids),
    )


def wait_for_status(
    factory: sessionmaker[Session], job_id: str, wanted: set[str], timeout: float
) -> str:
    return wait_until(
        lambda: (s := statuses(factory, [job_id]).get(job_id)) in wanted and s,
        timeout,
        f"job {job_id[:8]} to be {sorted(wanted)}",
        describe=lambda: summary(factory, [job_id]),
    )


def wait_all_finished(
    factory: sessionmaker[Session], job_ids: Sequence[str], timeout: float
) -> dict[str, str]:
    """Until every job is succeeded, failed or cancelled; returns their statuses."""

    def finished() -> dict[str, str] | None:
        seen = statuses(factory, job_ids)
        done = len(seen) == len(set(job_ids)) and all(s in FINISHED for s in seen.values())
        return seen if done else None

    return wait_until(
        finished,
        timeout,
        f"{len(set(job_ids))} jobs to finish",
        interval=0.1,
        describe=lambda: summary(factory, job_ids),
    )


def wait_for_running_job(
    factory: sessionmaker[Session], job_ids: Sequence[str], min_epoch: int, timeout: float
) -> Job:
    """Until some job is running past ``min_epoch`` (so it has a checkpoint); returns it."""

    def running() -> Job | None:
        with factory() as session:
            job = session.scalars(
                select(Job)
                .where(Job.id.in_(job_ids), Job.status == "running", Job.epoch >= min_epoch)
                .order_by(Job.epoch)
                .limit(1)
            ).first()
            if job is not None:
                session.expunge(job)
            return job

    return wait_until(
        running,
        timeout,
        f"a job running past epoch {min_epoch}",
        describe=lambda: summary(factory, job_ids),
    )


def owner_pid(job: Job) -> int:
    """The pid in a lease owner ``host:pid`` (the pool child running the job)."""
    assert job.lease_owner, f"{job!r} has no lease owner"
    return int(job.lease_owner.rsplit(":", 1)[1])
