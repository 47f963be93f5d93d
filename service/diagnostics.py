"""A job's diagnostics: the engine's rules (``worker.nn.diagnose``) over its stored curve.

Works for running jobs (findings are provisional: they read the points so far) and
finished ones. The read is bounded: a curve of at most ``limits.diagnostics_points``
points is read whole; a longer one is read as

- its first ``EDGE_POINTS`` and last ``EDGE_POINTS`` epochs, exactly: every rule that
  looks at the start (gradients across depth in the first 3 recorded epochs, saturation
  in the first 5, the first loss) or at the end (the median of the last ≤ 5 points, dead
  units over the last 5) sees the same epochs as on the whole curve;
- the epochs of the minimum training and validation loss, exactly: "gave back its gain"
  (learning rate too high) and overfitting compare the end with these minima;
- every ``stride``-th epoch between (a primary-key range scan with ``epoch % stride``),
  so that the total stays within the limit.

What a sample changes, and why it stays valid: shape rules that compare parts of the
curve (a quarter's drop against another's, the share of falling steps) read them at the
sample's resolution, i.e. "the loss fell from one sample to the next" rather than from
one epoch to the next — the steady decline they look for is a property of the whole run,
which the even sample keeps. Epochs reported for the middle of a long run (where the
loss first tripled, where a streak of dead units began, a gradient's peak) are those of
the nearest sampled epoch, at most ``stride`` epochs late, and a one-epoch gradient spike
in the middle can go unseen (a gradient that keeps growing cannot).

Kernel code: no Flask, no Celery; the engine reads the points.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service import generators, jobs
from service.config import Limits
from service.models import CurvePoint, Dataset, Job
from service.schemas.records import POINT_FIELDS, point_values
from worker.nn.diagnostics import diagnose
from worker.nn.run_curve import RunContext

EDGE_POINTS = 25
"""Epochs read exactly at each end of a long curve (the rules' windows are ≤ 5 wide)."""


def etag(job: Job) -> str:
    """Findings are a function of the job's spec, error and points: its version."""
    return jobs.etag(job, "diagnostics")


def job_diagnostics(session: Session, job: Job, limits: Limits) -> dict[str, Any]:
    """The body of ``GET /jobs/{id}/diagnostics``: findings, most severe first."""
    points, stored = read_points(session, job.id, limits.diagnostics_points)
    task, n_classes = classes_of(session, job)
    context = RunContext.from_spec(job.spec, task=task, n_classes=n_classes)
    return {
        "job_id": job.id,
        "status": job.status,
        "findings": diagnose(points, context, error=job.error),
        "epochs": stored,
        "epochs_read": len(points),
    }


def read_points(session: Session, job_id: str, cap: int) -> tuple[list[dict[str, Any]], int]:
    """The job's points as the rules need them (whole, or sampled as this module's
    docstring says), and how many the job has stored."""
    cap = max(cap, 2 * EDGE_POINTS + 3)  # the two ends, the two minima and one more
    of_job = CurvePoint.job_id == job_id
    first, last, count = session.execute(
        select(func.min(CurvePoint.epoch), func.max(CurvePoint.epoch), func.count()).where(of_job)
    ).one()
    base = select(CurvePoint).where(of_job)
    if count <= cap:
        rows = list(session.scalars(base.order_by(CurvePoint.epoch)))
        return [point_values(row, POINT_FIELDS) for row in rows], count
    head = session.scalars(base.order_by(CurvePoint.epoch).limit(EDGE_POINTS))
    tail = session.scalars(base.order_by(CurvePoint.epoch.desc()).limit(EDGE_POINTS))
    chosen = {row.epoch: row for rows in (head, tail) for row in rows}
    for column in (CurvePoint.train_loss, CurvePoint.val_loss):
        best = session.scalars(base.where(column.is_not(None)).order_by(column, CurvePoint.epoch))
        row = best.first()
        if row is not None:
            chosen[row.epoch] = row
    budget = max(cap - len(chosen) - 1, 1)
    stride = max(-(-(last - first) // budget), 1)  # ceil: at most `budget` sampled epochs
    middle = base.where(
        CurvePoint.epoch > first + EDGE_POINTS,
        CurvePoint.epoch < last - EDGE_POINTS,
        (CurvePoint.epoch - first) % stride == 0,
    )
    for row in session.scalars(middle):
        chosen.setdefault(row.epoch, row)
    return [point_values(chosen[e], POINT_FIELDS) for e in sorted(chosen)], count


def classes_of(session: Session, job: Job) -> tuple[str, int | None]:
    """(task, number of classes) of the job's dataset; None when it cannot be known (the
    rules that compare accuracy with chance then stay silent)."""
    dataset = job.spec.get("dataset") or {}
    if "generator" in dataset:
        task, _, n_outputs = generators.describe(dataset)
        return task, n_outputs if task == "classification" else None
    if "id" in dataset:
        row = session.get(Dataset, job.dataset_id) if job.dataset_id else None
        if row is None:
            return "classification", None
        task, labels = row.task, [repr(label) for label in row.classes or []]
    else:
        task = str(dataset.get("task") or "classification")
        labels = [repr(label) for label in dataset.get("y") or []]
    if task != "classification":
        return task, None
    return task, len(set(labels)) or None
