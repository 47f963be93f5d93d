"""CSV exports: a batch's results (one row per job) and a job's whole curve.

Kernel code. Numbers are written with Python's shortest round-tripping repr, missing
values as empty fields, non-scalar parameter values (a list of layers) as JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Batch, CurvePoint, Job, summary_column
from service.schemas.names import METRICS, SUMMARY_STATS
from service.schemas.records import NUMERIC_FIELDS

CURVE_COLUMNS: tuple[str, ...] = ("epoch", *NUMERIC_FIELDS)
SUMMARY_HEADERS: tuple[str, ...] = tuple(f"{m}.{s}" for m in METRICS for s in SUMMARY_STATS)
# Epochs read per query while a curve is written out (the whole curve is never in memory).
CURVE_CHUNK = 5000


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def results_csv(batch: Batch, jobs: Sequence[Job]) -> str:
    """One row per job in batch order: id, index, name, status, epoch, the varied
    parameters (named by their dotted paths), then each metric's summary
    (``val_loss.min``, ...)."""
    varied = list(batch.varied)
    header = ["id", "index", "name", "status", "epoch", *varied, *SUMMARY_HEADERS]
    rows: list[Sequence[Any]] = [header]
    for job in jobs:
        params = job.params or {}
        summary = job.summary_row
        stats = [
            None if summary is None else getattr(summary, summary_column(m, s))
            for m in METRICS
            for s in SUMMARY_STATS
        ]
        rows.append([job.id, job.batch_index, job.name, job.status, job.epoch,
                     *(params.get(p) for p in varied), *stats])  # fmt: skip
    return "".join(_lines(rows))


def curve_csv(session: Session, job_id: str) -> Iterator[str]:
    """The job's whole curve as CSV lines (header first), read ``CURVE_CHUNK`` epochs at a
    time by primary key."""
    columns = [getattr(CurvePoint, name) for name in CURVE_COLUMNS]
    yield from _lines([CURVE_COLUMNS])
    after = -1
    while True:
        rows = session.execute(
            select(*columns)
            .where(CurvePoint.job_id == job_id, CurvePoint.epoch > after)
            .order_by(CurvePoint.epoch)
            .limit(CURVE_CHUNK)
        ).all()
        yield from _lines(rows)
        if len(rows) < CURVE_CHUNK:
            return
        after = rows[-1][0]
