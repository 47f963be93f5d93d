"""Curves: the points of a job's curve, written by its runs and read by the API.

Kernel code: no Flask, no Celery, no worker imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from service.db import dialect_insert
from service.models import CurvePoint
from service.schemas.records import point_values


def insert_points(session: Session, job_id: str, points: Sequence[dict[str, Any]]) -> None:
    """Insert a run's points; an epoch already stored is skipped (ON CONFLICT DO NOTHING):
    a resumed run recomputes, bit for bit, the epochs after its checkpoint."""
    rows = [{"job_id": job_id, **point_values(p)} for p in points]
    insert = dialect_insert(session)(CurvePoint)
    # executemany with one cached statement: a multi-VALUES literal would be compiled
    # afresh for every flush (it cost as much as training tiny nets).
    session.execute(insert.on_conflict_do_nothing(index_elements=["job_id", "epoch"]), rows)
