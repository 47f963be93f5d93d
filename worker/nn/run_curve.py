"""A run's recorded history as the diagnostic rules read it, and what they report.

``Curve.from_points`` turns curve points (plain dicts, the shape of
``EpochStats.to_point()``) into per-field lists in epoch order; anything missing or
non-finite is kept as None so that each rule can tell "not recorded" from a number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

END_WINDOW_MAX = 5
"""The "end" of a curve is the median of its last n/10 values, at least 1 and at most this."""


@dataclass(frozen=True)
class RunContext:
    """What the rules need to know about the run besides its curve.

    activations : one name per weight layer, the output's last (empty when unknown)
    optimizer, learning_rate : the training spec's (the initial rate)
    task : "classification" or "regression"
    n_classes : classes of a classification task (2 for one sigmoid output); None skips
        the rules that compare accuracy with chance
    early_stopping : whether the run had early stopping (it keeps the best weights)
    """

    activations: tuple[str, ...] = ()
    optimizer: str = "gd"
    learning_rate: float | None = None
    task: str = "classification"
    n_classes: int | None = None
    early_stopping: bool = False

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], task: str = "classification", n_classes: int | None = None
    ) -> RunContext:
        """From a job spec ``{"network": ..., "training": ...}`` as the API validated it."""
        network = spec.get("network") or {}
        training = spec.get("training") or {}
        optimizer = training.get("optimizer") or {}
        names = [str(layer.get("activation")) for layer in network.get("layers") or []]
        output = (network.get("output") or {}).get("activation")
        if output is not None:
            names.append(str(output))
        rate = optimizer.get("learning_rate")
        return cls(
            activations=tuple(names),
            optimizer=str(optimizer.get("name", "gd")),
            learning_rate=None if rate is None else float(rate),
            task=task,
            n_classes=n_classes,
            early_stopping=training.get("early_stopping") is not None,
        )


@dataclass
class Finding:
    """One diagnosis; ``evidence`` holds the numbers that triggered it."""

    code: str
    severity: str
    message: str
    evidence: dict[str, Any]
    layer: int | None = None
    epoch: int | None = None


@dataclass
class Curve:
    """A run's points as lists in epoch order (None where a value is missing)."""

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    train_accuracy: list[float | None] = field(default_factory=list)
    # Only the epochs that recorded them: (epoch, ‖D^(k)‖ per layer, update ratio per layer).
    gradients: list[tuple[int, list[float | None], list[float | None]]] = field(
        default_factory=list
    )
    # (epoch, activation statistics per layer).
    activations: list[tuple[int, list[Mapping[str, Any]]]] = field(default_factory=list)
    non_finite_epoch: int | None = None

    @classmethod
    def from_points(cls, points: Sequence[Mapping[str, Any]]) -> Curve:
        curve = cls()
        for point in sorted(points, key=lambda p: int(p["epoch"])):
            epoch = int(point["epoch"])
            loss = _number(point.get("train_loss"))
            if loss is None and point.get("train_loss") is not None:
                curve.non_finite_epoch = curve.non_finite_epoch or epoch
            curve.epochs.append(epoch)
            curve.train_loss.append(loss)
            curve.val_loss.append(_number(point.get("val_loss")))
            curve.train_accuracy.append(_number(point.get("train_accuracy")))
            grads = point.get("grad_norms")
            if isinstance(grads, Mapping) and grads.get("D"):
                norms = [_number(d) for d in grads["D"]]
                ratios = [_number(r) for r in grads.get("update_ratio") or []]
                curve.gradients.append((epoch, norms, ratios))
            stats = point.get("activation_stats")
            if isinstance(stats, Sequence) and stats:
                curve.activations.append((epoch, list(stats)))
        return curve


def _number(value: Any) -> float | None:
    """A finite float, or None (missing, None, non-finite or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def present(values: Sequence[float | None]) -> list[float]:
    """The values that are there."""
    return [v for v in values if v is not None]


def end_value(values: Sequence[float | None]) -> float | None:
    """The median of the last n/10 values (1 to ``END_WINDOW_MAX``): the curve's end."""
    known = present(values)
    if not known:
        return None
    width = min(END_WINDOW_MAX, max(1, len(known) // 10))
    return statistics.median(known[-width:])


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def median_update_ratios(curve: Curve) -> list[float | None]:
    """Each layer's median ‖ΔΘ‖/‖Θ‖ over the recorded epochs ([] if none were recorded)."""
    rows = [U for _, _, U in curve.gradients if U]
    if not rows:
        return []
    n = len(rows[0])
    return [median([U[k] for U in rows if len(U) == n]) for k in range(n)]


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are there, None if there are none."""
    known = present(values)
    return statistics.median(known) if known else None


def lower_rate_advice(ctx: RunContext) -> str:
    if ctx.learning_rate:
        return (
            f"Lower the learning rate ({ctx.learning_rate:g}) 3–10×, e.g. to "
            f"{ctx.learning_rate / 10:g}, or use the learning-rate finder."
        )
    return "Lower the learning rate 3–10×, or use the learning-rate finder."
