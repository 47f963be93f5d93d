"""Comparing runs: each job's metric summary, kept with its curve; a batch's counts by
status, progress, and the best job by a metric.

A job's summary (``job_summaries``, one row per job) holds, for each metric, the min, max
and last value and the first epochs of the min and max. ``record`` merges a flush's new
points into it in the flush's own transaction; ``rebuild`` recomputes it from the stored
curve when a curve moves back (a PBT exploit). Reads never scan curves. Values that are
not finite do not count (a curve point is never NaN in practice: the engine fails first).

Kernel code. The filter grammar over summaries is ``service.search``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, case, cast, func, insert, select, update
from sqlalchemy.orm import Session

from service.db import insert_built_once
from service.models import CurvePoint, Job, JobSummary, summary_column
from service.problems import Invalid
from service.schemas.names import FINISHED, METRICS, MODES, SUMMARY_STATS, JobStatus

SUMMARY = JobSummary.__table__
COLUMNS: tuple[str, ...] = tuple(summary_column(m, s) for m in METRICS for s in SUMMARY_STATS)

# --- a job's summary, kept with its curve ----------------------------------------------------


def merge(row: Mapping[str, Any] | None, points: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary after ``points``: ``row`` (a summary's columns and ``epoch``, or None)
    with every point after its epoch merged in (points at or before it are stored already:
    a resumed run recomputes them). Ties keep the earliest epoch; ``last`` is the value at
    the latest epoch (None if that point has none)."""
    out: dict[str, Any] = dict(row) if row else {"epoch": 0, **dict.fromkeys(COLUMNS)}
    seen = out["epoch"]
    for point in sorted(points, key=lambda p: p["epoch"]):
        epoch = point["epoch"]
        if epoch <= seen:
            continue
        for metric in METRICS:
            value = point.get(metric)
            if not isinstance(value, int | float) or not math.isfinite(value):
                out[summary_column(metric, "last")] = None
                continue
            value = out[summary_column(metric, "last")] = float(value)
            low, high = summary_column(metric, "min"), summary_column(metric, "max")
            if out[low] is None or value < out[low]:
                out[low], out[summary_column(metric, "argmin_epoch")] = value, epoch
            if out[high] is None or value > out[high]:
                out[high], out[summary_column(metric, "argmax_epoch")] = value, epoch
        out["epoch"] = seen = epoch
    return out


def record(
    session: Session,
    job_id: str,
    points: Sequence[Mapping[str, Any]],
    *,
    tenant_id: str | None = None,
    first: bool = False,
) -> bool:
    """Merge a flush's points into the job's summary (call it in the flush's transaction,
    after the fenced write that makes the run the job's only writer).

    ``first``: the caller knows of no earlier write of the job's curve (its first run's
    only write), so the summary is inserted at once; if one exists after all, the insert
    does nothing and the points are merged into it as usual. ``tenant_id`` spares the
    read of the job's tenant for an insert. True if ``first`` held: this inserted the
    job's first summary (every write of points writes the summary too)."""
    if not points:
        return False
    if first:
        tenant_id = tenant_id or session.scalar(select(Job.tenant_id).where(Job.id == job_id))
        if record_firsts(session, [(job_id, tenant_id, points)]):
            return True
    row = session.execute(
        select(SUMMARY).where(SUMMARY.c.job_id == job_id)
    ).mappings().one_or_none()  # fmt: skip
    _save(session, job_id, row, merge(_values(row), points), tenant_id)
    return False


def record_firsts(
    session: Session, firsts: Sequence[tuple[str, str | None, Sequence[Mapping[str, Any]]]]
) -> set[str]:
    """The first summaries of jobs (id, tenant, points) whose curve nothing has written
    yet, in one statement (a group's finish writes several); returns the ids inserted. A
    job that had one after all is left out (the caller merges into it with ``record``)."""
    rows = [
        {"job_id": job_id, "tenant_id": tenant, **merge(None, points)}
        for job_id, tenant, points in firsts
        if points
    ]
    if not rows:
        return set()
    inserted = session.execute(insert_built_once(session, _insert_first), rows)
    return {row.job_id for row in inserted}


def _insert_first(make: Any) -> Any:
    """``record_firsts``' INSERT … ON CONFLICT DO NOTHING RETURNING (``insert_built_once``:
    built with inline values, it was compiled afresh for every job)."""
    return (
        make(SUMMARY).on_conflict_do_nothing(index_elements=["job_id"]).returning(SUMMARY.c.job_id)
    )


def rebuild(session: Session, job_id: str) -> None:
    """Recompute the job's summary from its stored curve (after a PBT exploit moved it)."""
    columns = [CurvePoint.epoch, *(getattr(CurvePoint, m) for m in METRICS)]
    points = session.execute(
        select(*columns).where(CurvePoint.job_id == job_id).order_by(CurvePoint.epoch)
    ).mappings()
    fresh = merge(None, (dict(p) for p in points))
    row = session.execute(
        select(SUMMARY.c.job_id).where(SUMMARY.c.job_id == job_id)
    ).one_or_none()  # fmt: skip
    _save(session, job_id, row, fresh)


def _values(row: Any) -> dict[str, Any] | None:
    return None if row is None else {name: row[name] for name in ("epoch", *COLUMNS)}


def _save(
    session: Session, job_id: str, row: Any, values: dict[str, Any], tenant_id: str | None = None
) -> None:
    if row is not None:
        session.execute(update(SUMMARY).where(SUMMARY.c.job_id == job_id).values(**values))
        return
    tenant_id = tenant_id or session.scalar(select(Job.tenant_id).where(Job.id == job_id))
    session.execute(insert(SUMMARY).values(job_id=job_id, tenant_id=tenant_id, **values))


def summary_dict(row: JobSummary | None) -> dict[str, dict[str, Any]]:
    """``{metric: {min, max, last, argmin_epoch, argmax_epoch}}``, nulls before any point."""
    return {
        metric: {
            stat: None if row is None else getattr(row, summary_column(metric, stat))
            for stat in SUMMARY_STATS
        }
        for metric in METRICS
    }


# --- a batch ---------------------------------------------------------------------------------


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


def reduced(job: Job, metric: str, reduce: str = "last") -> float | None:
    """The value of ``metric`` that ranks ``job``: its last (``jobs.metrics``, the latest
    point), or the min or max of its curve (its summary)."""
    if reduce == "last":
        value = (job.metrics or {}).get(metric)
        return float(value) if isinstance(value, int | float) else None
    row = job.summary_row
    return None if row is None else getattr(row, summary_column(metric, reduce))


def best_job(jobs: Sequence[Job], metric: str, mode: str, reduce: str = "last") -> Best | None:
    """The succeeded job with the lowest (``min``) or highest (``max``) ``metric``, each
    job's value taken by ``reduce`` (last, min or max of its curve).

    Jobs without that metric (e.g. ``val_loss`` with no validation split) do not compete;
    ties go to the earlier job in batch order.
    """
    best: Best | None = None
    for job in jobs:
        value = reduced(job, metric, reduce)
        if job.status != JobStatus.succeeded or value is None:
            continue
        if best is None or (value < best.value if mode == "min" else value > best.value):
            best = Best(job.id, value)
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
