"""A big sweep at a glance: the band of its curves (quantiles per epoch across the jobs),
its best k jobs, and the job nearest a point of the chart.

A browser drawing a thousand curves would fetch every point and still show spaghetti;
these answers are computed here from a bounded read instead: the band reads each job's
value at no more than ``points`` epochs (primary-key lookups on ``curve_points``), the
ranking reads the jobs' latest metrics (``jobs.metrics``), and the nearest job reads one
epoch of every job. Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only

from service import summaries
from service.batches import SUMMARY_COLUMNS
from service.models import Batch, CurvePoint, Job

# The band's quantiles and the names of their series in the answer (p10 ... p90).
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
QUANTILE_KEYS: tuple[str, ...] = tuple(f"p{round(q * 100)}" for q in QUANTILES)
# Significant digits of band values: a chart cannot show more.
DIGITS = 6


def band_etag(session: Session, batch: Batch, *query: Any) -> str:
    """Changes whenever a job of the batch is written, appears or goes (every write
    bumps ``jobs.version``): one aggregate read, before anything is computed."""
    count, versions, epochs = session.execute(
        select(func.count(), func.coalesce(func.sum(Job.version), 0), func.max(Job.epoch)).where(
            Job.batch_id == batch.id
        )
    ).one()
    text = "|".join(str(part) for part in (batch.id, count, versions, epochs, *query))
    return f"band-{batch.id}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def _value(job: Job, metric: str) -> float | None:
    value = (job.metrics or {}).get(metric)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


def _job_ref(job: Job, value: float | None) -> dict[str, Any]:
    return {
        "id": job.id,
        "index": job.batch_index,
        "name": job.name,
        "status": job.status,
        "params": job.params or {},
        "value": value,
    }


def ranked(jobs: Sequence[Job], metric: str, mode: str, k: int) -> list[dict[str, Any]]:
    """The ``k`` jobs with the best latest ``metric`` (any status; jobs without the metric
    do not compete), best first; ties go to the earlier job in batch order."""
    rated = [(value, job) for job in jobs if (value := _value(job, metric)) is not None]
    sign = 1.0 if mode == "min" else -1.0
    rated.sort(key=lambda pair: (sign * pair[0], pair[1].batch_index or 0))
    return [_job_ref(job, value) for value, job in rated[:k]]


def epoch_grid(last_epoch: int, points: int) -> list[int]:
    """At most ``points`` epochs from 1 to ``last_epoch``, evenly spaced, both ends kept."""
    if last_epoch < 1:
        return []
    grid = np.unique(np.round(np.linspace(1, last_epoch, min(points, last_epoch))))
    return [int(e) for e in grid]


def _band_jobs(session: Session, batch_id: str) -> list[Job]:
    """The batch's jobs in batch order, as plain rows of the columns a band reads (what
    ``default_metric``, ``best_job`` with ``reduce="last"`` and ``_job_ref`` use): at
    1,000 jobs ~10 ms, where ORM objects with their summary rows take ~250 ms."""
    rows = session.execute(
        select(Job.id, Job.batch_index, Job.name, Job.status, Job.params, Job.epoch, Job.metrics)
        .where(Job.batch_id == batch_id)
        .order_by(Job.batch_index)
    ).all()
    return cast("list[Job]", rows)  # rows with Job's attribute names, read-only


def _grid_values(
    session: Session, batch_id: str, column: Any, grid: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every finite value of ``column`` at the ``grid``'s epochs across the batch's jobs,
    sorted by epoch: (epochs, values). Which job a value is from does not matter to a
    quantile, so it is not read; a grid of consecutive epochs reads each job's range in
    one index scan instead of one lookup per epoch (~2x faster on SQLite)."""
    if not grid:
        return np.zeros(0, dtype=int), np.zeros(0)
    if grid[-1] - grid[0] + 1 == len(grid):
        at_grid = CurvePoint.epoch.between(grid[0], grid[-1])
    else:
        at_grid = CurvePoint.epoch.in_(grid)
    query = (
        select(CurvePoint.epoch, column)
        .join(Job, Job.id == CurvePoint.job_id)
        .where(Job.batch_id == batch_id, at_grid, column.is_not(None))
    )
    # Streamed into an array through Core: no ORM layer and no list of 60,000 Row objects
    # (a third of the CPU time of listing them first).
    result = session.connection().execute(query)
    pairs = np.fromiter(itertools.chain.from_iterable(result), dtype=float).reshape(-1, 2)
    pairs = pairs[np.isfinite(pairs[:, 1])]
    epochs, values = pairs[:, 0].astype(int), pairs[:, 1]
    order = np.argsort(epochs, kind="stable")
    return epochs[order], values[order]


def band(
    session: Session,
    batch: Batch,
    metric: str | None,
    mode: str | None,
    k: int,
    points: int,
) -> dict[str, Any]:
    """The batch's band of ``metric`` curves and its ``k`` best jobs.

    ``band`` holds, for each epoch of a grid of at most ``points`` epochs, how many jobs
    have a value there (``count``) and the quantiles ``p10 p25 p50 p75 p90`` of those
    values across the jobs (null where none has). ``top`` ranks by the latest value (any
    status) and always holds the best succeeded job. No ``metric``: the summary's default
    (``summaries.default_metric``).
    """
    jobs = _band_jobs(session, batch.id)
    defaulted = metric is None
    metric, mode = summaries.check_metric(metric or summaries.default_metric(jobs), mode)
    grid = epoch_grid(max((job.epoch for job in jobs), default=0), points)
    epochs, values = _grid_values(session, batch.id, getattr(CurvePoint, metric), grid)
    # Per grid epoch (epochs sorted): how many jobs have a value and their quantiles.
    counts = np.zeros(len(grid), dtype=int)
    series: dict[str, list[float | None]] = {key: [None] * len(grid) for key in QUANTILE_KEYS}
    col = np.searchsorted(grid, epochs)
    bounds = np.searchsorted(col, np.arange(len(grid) + 1))
    for j in range(len(grid)):
        at = values[bounds[j] : bounds[j + 1]]
        counts[j] = at.size
        if at.size:
            for key, value in zip(QUANTILE_KEYS, np.quantile(at, QUANTILES), strict=True):
                series[key][j] = _rounded(float(value))
    best = summaries.best_job(jobs, metric, mode)
    top = ranked(jobs, metric, mode, k)
    if best is not None and k and all(ref["id"] != best.id for ref in top):
        # Running jobs may rank above every finished one: the best stays drawn.
        top.append(next(_job_ref(j, best.value) for j in jobs if j.id == best.id))
    return {
        "metric": metric,
        "mode": mode,
        "metric_defaulted": defaulted,
        "jobs": len(jobs),
        "ranked": sum(1 for job in jobs if _value(job, metric) is not None),
        "quantiles": list(QUANTILES),
        "band": {"epoch": grid, "count": [int(c) for c in counts], **series},
        "top": top,
        "best": None if best is None else {"id": best.id, "value": best.value},
    }


def nearest(
    session: Session, batch: Batch, metric: str, epoch: int, value: float
) -> dict[str, Any]:
    """The job whose ``metric`` at ``epoch`` is nearest ``value`` (on a log scale for
    losses, as the chart draws them), among the jobs with a point there; None if none has."""
    column = getattr(CurvePoint, metric)
    rows = session.execute(
        select(CurvePoint.job_id, column)
        .join(Job, Job.id == CurvePoint.job_id)
        .where(Job.batch_id == batch.id, CurvePoint.epoch == epoch, column.is_not(None))
    ).all()
    log_scale = metric.endswith("loss") and value > 0

    def distance(candidate: float) -> float:
        if log_scale and candidate > 0:
            return abs(math.log(candidate) - math.log(value))
        return abs(candidate - value) if not log_scale else math.inf

    found = min(
        ((distance(v), job_id, v) for job_id, v in rows if math.isfinite(v)),
        default=None,
    )
    job = None
    if found is not None and math.isfinite(found[0]):
        row = session.scalar(
            select(Job).options(load_only(*SUMMARY_COLUMNS)).where(Job.id == found[1])
        )
        if row is not None:
            job = _job_ref(row, found[2])
    return {"metric": metric, "epoch": epoch, "value": value, "job": job}
