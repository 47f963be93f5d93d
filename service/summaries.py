"""Comparing the runs of a batch: counts by status, progress, and the best job by a metric.

Kernel code. Per-job metric summaries and the job filter grammar belong here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session

from service.models import Job
from service.problems import Invalid
from service.schemas.names import FINISHED, METRICS, MODES, JobStatus


def default_metric(jobs: Sequence[Job]) -> str:
    """What ranks a batch when the client names no metric: ``val_loss`` when some job has
    one, else ``train_loss`` (jobs trained without a validation split have none)."""
    if any(isinstance((job.metrics or {}).get("val_loss"), int | float) for job in jobs):
        return "val_loss"
    if any(isinstance((job.metrics or {}).get("train_loss"), int | float) for job in jobs):
        return "train_loss"
    return "val_loss"


def check_metric(metric: str | None, mode: str | None) -> tuple[str, str]:
    """Default ``val_loss``; losses default to ``min`` and accuracies to ``max``."""
    metric = metric or "val_loss"
    if metric not in METRICS:
        raise Invalid.at(("query", "metric"), f"metric must be one of {list(METRICS)}")
    mode = mode or ("max" if metric.endswith("accuracy") else "min")
    if mode not in MODES:
        raise Invalid.at(("query", "mode"), "mode must be 'min' or 'max'")
    return metric, mode


@dataclass(frozen=True)
class Best:
    id: str
    value: float


def best_job(jobs: Sequence[Job], metric: str, mode: str) -> Best | None:
    """The succeeded job with the lowest (``min``) or highest (``max``) final ``metric``.

    Jobs without that metric (e.g. ``val_loss`` with no validation split) do not compete;
    ties go to the earlier job in batch order.
    """
    best: Best | None = None
    for job in jobs:
        value = (job.metrics or {}).get(metric)
        if job.status != JobStatus.succeeded or not isinstance(value, int | float):
            continue
        if best is None or (value < best.value if mode == "min" else value > best.value):
            best = Best(job.id, float(value))
    return best


def count_statuses(jobs: Sequence[Job]) -> dict[str, int]:
    """``{status: count}`` of these jobs, every status present (zeros included)."""
    counts = dict.fromkeys(JobStatus.__members__, 0)
    for job in jobs:
        counts[job.status] += 1
    return counts


def status_counts(session: Session, batch_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """``{batch_id: {status: count}}`` with every status present, in one query."""
    counts = {bid: dict.fromkeys(JobStatus.__members__, 0) for bid in batch_ids}
    if batch_ids:
        rows = session.execute(
            select(Job.batch_id, Job.status, func.count())
            .where(Job.batch_id.in_(list(batch_ids)))
            .group_by(Job.batch_id, Job.status)
        )
        for batch_id, status, count in rows:
            counts[str(batch_id)][status] = count
    return counts


def batch_progress(session: Session, batch_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{batch_id: {finished, total, fraction}}`` in one query: the mean of the jobs'
    epoch fractions, where a finished job counts as done whatever its epoch (early
    stopping, failure, cancel)."""
    ended = Job.status.in_([s.value for s in FINISHED])
    # CASE rather than LEAST/MIN: scalar min differs between PostgreSQL and SQLite.
    share = case(
        (ended, 1.0),
        (Job.epoch >= Job.epochs, 1.0),
        else_=cast(Job.epoch, Float) / Job.epochs,
    )
    query = (
        select(
            Job.batch_id,
            func.count().label("total"),
            func.sum(case((ended, 1), else_=0)).label("finished"),
            func.sum(share).label("done"),
        )
        .where(Job.batch_id.in_(list(batch_ids)))
        .group_by(Job.batch_id)
    )
    found = {row.batch_id: row for row in session.execute(query)}
    out = {}
    for batch_id in batch_ids:
        row = found.get(batch_id)
        if row is None:  # a batch whose jobs were all deleted
            out[batch_id] = {"finished": 0, "total": 0, "fraction": 1.0}
            continue
        out[batch_id] = {
            "finished": int(row.finished),
            "total": row.total,
            "fraction": round(float(row.done) / row.total, 6),
        }
    return out
