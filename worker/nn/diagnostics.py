"""Why a run is not learning: findings read from its recorded curve.

``diagnose(points, context, error=None)`` takes a job's curve points as plain dicts (the
shape of ``EpochStats.to_point()``: ``epoch``, ``train_loss``, ``val_loss``,
``train_accuracy``, ``val_accuracy``, ``learning_rate``, ``grad_norms`` = ``{"D": [...],
"update_ratio": [...]}`` or None, ``activation_stats`` or None), a ``RunContext`` and, for
a failed job, its error (``{"type": "non_finite", "epoch": E, ...}``). It returns
JSON-ready findings, most severe first::

    {"code", "severity": "error"|"warning"|"info", "layer": k | None, "epoch": e | None,
     "message": what happened and what to try, "evidence": {the numbers behind it}}

Layer k is the k-th weight layer, as in the recorded lists: Θ^(k) (``grad_norms.D[k-1]``)
and the units it feeds (``activation_stats[k-1]``); 1 is the first hidden layer, the last
is the output. A rule whose data was not recorded says nothing. Every threshold is a
constant of ``curve_rules`` or ``layer_rules``; docs/diagnostics.md says where each
comes from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .curve_rules import diverged, overfitting, too_high, too_low, underfitting
from .layer_rules import activations, gradients
from .run_curve import Curve, RunContext

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
CODES = (
    "diverged",
    "exploding_gradients",
    "vanishing_gradients",
    "dead_relu",
    "saturated_units",
    "learning_rate_too_high",
    "learning_rate_too_low",
    "overfitting",
    "underfitting",
)
# The codes that name a cause; overfitting and underfitting are symptoms.
_CAUSES = frozenset(CODES) - {"overfitting", "underfitting"}


def diagnose(
    points: Sequence[Mapping[str, Any]],
    context: RunContext | None = None,
    error: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Findings for a run, most severe first.

    Parameters
    ----------
    points : curve points (dicts) in any order; a missing key means not recorded
    context : what the spec says (``RunContext.from_spec``); the default knows nothing
    error : the failed job's ``{"type", "message", "epoch"}``, if any
    """
    curve, ctx = Curve.from_points(points), context or RunContext()
    findings = diverged(curve, ctx, error)
    findings += gradients(curve, ctx)
    findings += activations(curve, ctx)
    if not any(f.code == "diverged" for f in findings):
        findings += too_high(curve, ctx)
    findings += too_low(curve, ctx) + overfitting(curve, ctx)
    # Underfitting is a symptom: when a cause was found, it only points there.
    explained = any(f.code in _CAUSES and f.severity != "info" for f in findings)
    findings += underfitting(curve, ctx, explained)
    findings.sort(key=lambda f: (SEVERITY_ORDER[f.severity], CODES.index(f.code), f.layer or 0))
    return [
        {
            "code": f.code,
            "severity": f.severity,
            "layer": f.layer,
            "epoch": f.epoch,
            "message": f.message,
            "evidence": {key: _finite(value) for key, value in f.evidence.items()},
        }
        for f in findings
    ]


def _finite(value: Any) -> Any:
    """Evidence stays strict JSON: a non-finite float (a ratio that overflowed) is None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


__all__ = ["CODES", "RunContext", "diagnose"]
