"""The curve point: one epoch of one job, declared once.

``CurvePointOut``'s fields are what a run flushes (``point_from_stats``), what the
``curve_points`` rows and ``jobs.metrics`` hold (``POINT_FIELDS`` drives the insert), and
what every curve answers and the OpenAPI document show. A new per-epoch value that the
engine reports (``EpochStats.to_point``) is a field here, a column of ``models.CurvePoint``
and a migration; ``tests/service/test_records.py`` checks that they agree.

Some fields are stored but answered only when a client asks for them
(``ON_REQUEST_FIELDS``: ``activation_stats``, a list per layer): ``point_values`` leaves
them out unless told otherwise, so a curve answer and ``jobs.metrics`` stay the size they
were; the insert stores every field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field


class ActivationStatOut(BaseModel):
    """One layer's activations on the epoch's last mini-batch (docs/diagnostics.md)."""

    layer: int = Field(description="k: the units Θ^(k) feeds; 1 = first hidden, last = output.")
    dead_fraction: float | None = Field(description="relu/leaky_relu units with z ≤ 0 throughout.")
    saturated_fraction: float | None = Field(
        description="Hidden sigmoid/tanh units saturated on most examples."
    )
    mean: float | None
    std: float | None


class CurvePointOut(BaseModel):
    """A curve answer holds ``epoch`` and the fields asked for (``fields=``)."""

    epoch: int
    train_loss: float | None = None
    val_loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    learning_rate: float | None = None
    grad_norms: dict[str, Any] | None = Field(
        default=None, description='{"D": [...], "update_ratio": [...]}; only when asked for.'
    )
    seconds: float | None = Field(default=None, description="That epoch's wall time.")
    activation_stats: list[ActivationStatOut] | None = Field(
        default=None,
        description="Per layer, with training.record.activations; only when asked for.",
    )


POINT_FIELDS: tuple[str, ...] = tuple(CurvePointOut.model_fields)
ON_REQUEST_FIELDS: tuple[str, ...] = ("activation_stats",)
ANSWERED_FIELDS: tuple[str, ...] = tuple(f for f in POINT_FIELDS if f not in ON_REQUEST_FIELDS)
# What a curve answer may hold besides ``epoch`` (``fields=``), and what it holds unasked.
CURVE_FIELDS: tuple[str, ...] = tuple(f for f in POINT_FIELDS if f != "epoch")
DEFAULT_CURVE_FIELDS: tuple[str, ...] = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
# The numbers of a point: downsampling keeps each requested one's minimum and maximum, and
# the stored levels (``service.curves``) hold them per block of epochs.
NUMERIC_FIELDS: tuple[str, ...] = tuple(
    name for name, info in CurvePointOut.model_fields.items() if info.annotation == float | None
)


def point_from_stats(stats: Any) -> dict[str, Any]:
    """A curve point from the engine's ``EpochStats``: its ``to_point()`` (where the engine
    nests the per-layer lists into ``grad_norms``), keeping the fields declared here."""
    return point_values(stats.to_point(), POINT_FIELDS)


def point_values(point: Any, fields: Sequence[str] = ANSWERED_FIELDS) -> dict[str, Any]:
    """The ``fields`` of a point, from a dict (a flushed point) or a row
    (``models.CurvePoint``); by default those answered without being asked for."""
    if isinstance(point, dict):
        return {name: point.get(name) for name in fields}
    return {name: getattr(point, name) for name in fields}
