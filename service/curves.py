"""Curves: the points a run writes, and the curves the API reads — of one job, or of
every job of a batch at once.

A point is the one declaration of ``schemas.records``. Reads are primary-key range scans
(``curve_points`` is keyed by (job_id, epoch)). Curve downsampling and column formats
belong here. Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from service.config import Limits
from service.cursors import epochs_cursor, read_epochs_cursor
from service.db import dialect_insert
from service.models import Batch, CurvePoint, Job
from service.schemas.names import FINISHED
from service.schemas.records import POINT_FIELDS, point_values

# Jobs per batch curves query: bounds the OR-chain (SQLite parses it as a tree of that depth).
CURVE_QUERY_CHUNK = 100
# A job's ETA uses the mean wall time of this many most recent epochs.
ETA_WINDOW = 20


def insert_points(session: Session, job_id: str, points: Sequence[dict[str, Any]]) -> None:
    """Insert a run's points; an epoch already stored is skipped (ON CONFLICT DO NOTHING):
    a resumed run recomputes, bit for bit, the epochs after its checkpoint."""
    rows = [{"job_id": job_id, **point_values(p, POINT_FIELDS)} for p in points]
    insert = dialect_insert(session)(CurvePoint)
    # executemany with one cached statement: a multi-VALUES literal would be compiled
    # afresh for every flush (it cost as much as training tiny nets).
    session.execute(insert.on_conflict_do_nothing(index_elements=["job_id", "epoch"]), rows)


def continue_from(
    session: Session, job_id: str, parent_id: str, last: int, epoch: int
) -> dict[str, Any] | None:
    """A trial that took another's checkpoint at ``epoch`` (a PBT exploit) goes on from it
    with one point per epoch: its own points after ``epoch`` go, and if the parent was ahead
    (``epoch > last``, its own last epoch), the parent's points fill the epochs between.
    Returns the point at ``epoch``, the trial's metrics now."""
    session.execute(delete(CurvePoint).where(CurvePoint.job_id == job_id, CurvePoint.epoch > epoch))
    if epoch > last:
        columns = [c.name for c in CurvePoint.__table__.columns if c.name != "job_id"]
        copied = select(literal(job_id), *(getattr(CurvePoint, c) for c in columns)).where(
            CurvePoint.job_id == parent_id, CurvePoint.epoch > last, CurvePoint.epoch <= epoch
        )
        session.execute(insert(CurvePoint).from_select(["job_id", *columns], copied))
    row = session.scalar(
        select(CurvePoint).where(CurvePoint.job_id == job_id, CurvePoint.epoch == epoch)
    )
    return None if row is None else point_values(row)


def job_curve(
    session: Session, job: Job, since: int, max_points: int | None, limits: Limits
) -> dict[str, Any]:
    """Curve points with epoch > since (a primary-key range scan), optionally downsampled.

    Downsampling keeps the first and the last point and evenly spaced epochs between them,
    reading only those rows. Without it, at most ``limits.curve_points`` rows are returned
    and ``next_since`` tells the client where to continue.
    """
    bounds = session.execute(
        select(func.min(CurvePoint.epoch), func.max(CurvePoint.epoch), func.count()).where(
            CurvePoint.job_id == job.id, CurvePoint.epoch > since
        )
    ).one()
    first, last, count = bounds
    base = select(CurvePoint).where(CurvePoint.job_id == job.id, CurvePoint.epoch > since)
    cap = min(max_points or limits.curve_points, limits.curve_points)
    if count == 0:
        rows: list[CurvePoint] = []
    elif count <= cap:
        rows = list(session.scalars(base.order_by(CurvePoint.epoch)))
    elif max_points:
        wanted = np.unique(np.round(np.linspace(first, last, cap)).astype(np.int64))
        rows = list(
            session.scalars(
                base.where(CurvePoint.epoch.in_([int(e) for e in wanted])).order_by(
                    CurvePoint.epoch
                )
            )
        )
    else:
        rows = list(session.scalars(base.order_by(CurvePoint.epoch).limit(cap)))
    next_since = rows[-1].epoch if rows else since
    has_more = last is not None and next_since < last
    return _curve(job.id, job.status, [point_values(p) for p in rows], next_since, has_more)


def curve_without_points(job_id: str, status: str, epoch: int, since: int) -> dict[str, Any] | None:
    """The answer of a poll that asks only for epochs after the job's last stored one
    (``jobs.epoch``, written with the points it counts), built without reading a point;
    None when there may be points to read (then ``job_curve`` answers)."""
    if since < epoch:
        return None
    return _curve(job_id, status, [], since, has_more=False)


def _curve(
    job_id: str, status: str, points: list[dict[str, Any]], next_since: int, has_more: bool
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "points": points,
        "next_since": next_since,
        "complete": status in FINISHED and not has_more,
    }


def batch_curves(
    session: Session, batch: Batch, cursor: str | None, max_points: int
) -> dict[str, Any]:
    """Every job's curve points after the cursor, at most ``max_points`` in all.

    The budget is shared fairly: each job with new points gets up to
    ``max_points // jobs_with_new_points`` (at least one) of its oldest unseen epochs.
    ``truncated`` says some job has more already stored: ask again with ``next_cursor``
    at once. ``complete`` says every job finished and every point was returned: stop.
    """
    rows = session.execute(
        select(Job.id, Job.batch_index, Job.status, Job.epoch)
        .where(Job.batch_id == batch.id)
        .order_by(Job.batch_index)
    ).all()
    size = max((row.batch_index for row in rows), default=-1) + 1
    seen = read_epochs_cursor(batch.id, cursor, size)
    pending = [row for row in rows if row.epoch > seen[row.batch_index]]
    per_job = max(1, max_points // max(len(pending), 1))
    windows = {row.id: (seen[row.batch_index], seen[row.batch_index] + per_job) for row in pending}
    points: dict[str, list[dict[str, Any]]] = {row.id: [] for row in rows}
    ids = list(windows)
    for start in range(0, len(ids), CURVE_QUERY_CHUNK):
        chunk = ids[start : start + CURVE_QUERY_CHUNK]
        condition = or_(
            *(
                and_(
                    CurvePoint.job_id == job_id,
                    CurvePoint.epoch > windows[job_id][0],
                    CurvePoint.epoch <= windows[job_id][1],
                )
                for job_id in chunk
            )
        )
        query = select(CurvePoint).where(condition).order_by(CurvePoint.job_id, CurvePoint.epoch)
        for point in session.scalars(query):
            points[point.job_id].append(point_values(point))
    truncated = False
    jobs = []
    for row in rows:
        got = points[row.id]
        if got:
            seen[row.batch_index] = got[-1]["epoch"]
        truncated = truncated or row.epoch > seen[row.batch_index]
        jobs.append({"id": row.id, "status": row.status, "points": got})
    return {
        "jobs": jobs,
        "next_cursor": epochs_cursor(batch.id, seen),
        "truncated": truncated,
        "complete": not truncated and all(row.status in FINISHED for row in rows),
    }


def mean_epoch_seconds(session: Session, job_id: str) -> float | None:
    """The mean wall time of the job's most recent epochs (None before its first)."""
    recent = (
        select(CurvePoint.seconds)
        .where(CurvePoint.job_id == job_id)
        .order_by(CurvePoint.epoch.desc())
        .limit(ETA_WINDOW)
        .subquery()
    )
    mean = session.scalar(select(func.avg(recent.c.seconds)))
    return None if mean is None else float(mean)
