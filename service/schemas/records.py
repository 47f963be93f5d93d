"""The curve point: one epoch of one job, declared once.

``CurvePointOut``'s fields are what a run flushes (``point_from_stats``), what the
``curve_points`` rows and ``jobs.metrics`` hold (``POINT_FIELDS`` drives the insert), and
what every curve answers and the OpenAPI document show. A new per-epoch value that the
engine reports (``EpochStats.to_point``) is a field here, a column of ``models.CurvePoint``
and a migration; ``tests/service/test_records.py`` checks that they agree.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CurvePointOut(BaseModel):
    epoch: int
    train_loss: float | None
    val_loss: float | None
    train_accuracy: float | None
    val_accuracy: float | None
    learning_rate: float | None
    grad_norms: dict[str, Any] | None = Field(description='{"D": [...], "update_ratio": [...]}')
    seconds: float | None = Field(description="That epoch's wall time.")


POINT_FIELDS: tuple[str, ...] = tuple(CurvePointOut.model_fields)


def point_from_stats(stats: Any) -> dict[str, Any]:
    """A curve point from the engine's ``EpochStats``: its ``to_point()`` (where the engine
    nests the per-layer lists into ``grad_norms``), keeping the fields declared here."""
    return point_values(stats.to_point())


def point_values(point: Any) -> dict[str, Any]:
    """The fields of a point, from a dict (a flushed point) or a row (``models.CurvePoint``)."""
    if isinstance(point, dict):
        return {name: point.get(name) for name in POINT_FIELDS}
    return {name: getattr(point, name) for name in POINT_FIELDS}
