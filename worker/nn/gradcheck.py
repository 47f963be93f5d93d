"""Numerical gradient check: centered differences against the engine's backprop.

For every parameter θ the numerical gradient is (J(θ + ε) − J(θ − ε)) / (2ε); the
analytic one comes from ``net.gradients``. Both are laid out as Ng's Θ^(l) of shape
(s_{l+1}, s_l + 1) — row = unit of layer l+1, column 0 = bias — so a report reads
against the lecture and against the trace. The agreement is Ng's relative difference
‖num − ana‖ / ‖num + ana‖, overall and per layer.

numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_EPSILON = 1e-4
DEFAULT_THRESHOLD = 1e-7


@dataclass(frozen=True)
class WorstParameter:
    """The parameter whose numerical and analytic gradients differ most.

    ``layer`` is Ng's l (1-based: Θ^(l) maps layer l to layer l+1); ``index`` is
    (row, column) in Θ^(l), row = unit of layer l+1, column 0 = the bias.
    """

    layer: int
    index: tuple[int, int]
    numerical: float
    analytic: float
    abs_diff: float

    @property
    def is_bias(self) -> bool:
        return self.index[1] == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "index": list(self.index),
            "is_bias": self.is_bias,
            "numerical": self.numerical,
            "analytic": self.analytic,
            "abs_diff": self.abs_diff,
        }


@dataclass(frozen=True)
class GradientCheckReport:
    """What a gradient check found; ``to_dict()`` is JSON-ready."""

    relative_difference: float
    per_layer: list[float]
    worst: WorstParameter
    threshold: float
    epsilon: float
    l2: float
    n_parameters: int
    n_examples: int
    numerical: list[np.ndarray] = field(repr=False)  # Θ layout, one per layer; NaN = unchecked
    analytic: list[np.ndarray] = field(repr=False)
    n_checked: int = 0  # parameters actually perturbed (all of them unless sampled)

    @property
    def passed(self) -> bool:
        return math.isfinite(self.relative_difference) and (
            self.relative_difference < self.threshold
        )

    def to_dict(self, include_gradients: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "relative_difference": _json_float(self.relative_difference),
            "passed": self.passed,
            "threshold": self.threshold,
            "epsilon": self.epsilon,
            "l2": self.l2,
            "n_parameters": self.n_parameters,
            "n_checked": self.n_checked,
            "n_examples": self.n_examples,
            "per_layer": [
                {"layer": i + 1, "relative_difference": _json_float(r)}
                for i, r in enumerate(self.per_layer)
            ],
            "worst": self.worst.to_dict(),
        }
        if include_gradients:
            out["numerical"] = [_json_matrix(g) for g in self.numerical]
            out["analytic"] = [g.tolist() for g in self.analytic]
        return out


def gradient_check(
    net: Any,
    X: np.ndarray,
    Y: np.ndarray,
    l2: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
    threshold: float = DEFAULT_THRESHOLD,
    max_parameters: int | None = None,
    rng: np.random.Generator | None = None,
    tick: Callable[[], None] | None = None,
) -> GradientCheckReport:
    """Compare ``net.gradients`` with centered differences of ``net.cost``.

    Parameters
    ----------
    net : Network
        Its ``weights[l]`` of shape (s_l, s_{l+1}) and ``biases[l]`` of shape (s_{l+1},) are
        perturbed one entry at a time and restored exactly (the saved value is written
        back, so the network is bit-for-bit unchanged afterwards).
    X : ndarray of shape (m, s_1)
    Y : ndarray of shape (m, K)
        One-hot targets for classification, real targets for regression.
    l2 : float
        λ of the regularisation term (λ/(2m)) ΣW².
    epsilon : float
        The step ε of the centered difference.
    threshold : float
        ``passed`` is ``relative_difference < threshold``.
    max_parameters : int, optional
        Check at most this many parameters, drawn from ``rng`` in proportion to each layer's
        size (at least one per layer); the others are NaN in ``numerical`` and left out of
        every relative difference. Two cost evaluations per parameter make a full check of
        a large network slow; a sample still catches a wrong layer.
    rng : numpy.random.Generator, optional
        Needed only when sampling.
    tick : callable, optional
        Called before each parameter's two cost evaluations; it may raise to stop the
        check (the API's request deadline, ``service.deadlines``). The network is intact
        then: the perturbed entry was restored.

    Returns
    -------
    GradientCheckReport
    """
    if epsilon <= 0:
        raise ValueError("epsilon must be positive")
    _, dW, db = net.gradients(X, Y, l2)
    analytic = [_to_theta(W, b) for W, b in zip(dW, db, strict=True)]
    numerical = [np.full(t.shape, np.nan) for t in analytic]
    chosen = _chosen_positions([t.size for t in analytic], max_parameters, rng)

    for layer, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        n_cols = W.shape[0] + 1
        for flat in chosen[layer]:
            row, col = divmod(int(flat), n_cols)
            # Θ[row, 0] is the bias of unit `row`; Θ[row, col] is W[col - 1, row].
            param, index = (b, (row,)) if col == 0 else (W, (col - 1, row))
            if tick is not None:
                tick()
            numerical[layer][row, col] = _centered(net, X, Y, l2, epsilon, param, index)

    masks = [~np.isnan(n) for n in numerical]
    per_layer = [
        _relative_difference(n[k], a[k]) for n, a, k in zip(numerical, analytic, masks, strict=True)
    ]
    overall = _relative_difference(
        np.concatenate([n[k] for n, k in zip(numerical, masks, strict=True)]),
        np.concatenate([a[k] for a, k in zip(analytic, masks, strict=True)]),
    )
    return GradientCheckReport(
        relative_difference=overall,
        per_layer=per_layer,
        worst=_worst(numerical, analytic),
        threshold=threshold,
        epsilon=epsilon,
        l2=l2,
        n_parameters=sum(t.size for t in analytic),
        n_examples=int(X.shape[0]),
        numerical=numerical,
        analytic=analytic,
        n_checked=int(sum(k.sum() for k in masks)),
    )


def _chosen_positions(
    sizes: list[int], max_parameters: int | None, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Flat Θ indices to check per layer: all of them, or a seeded proportional sample."""
    total = sum(sizes)
    if max_parameters is None or total <= max_parameters:
        return [np.arange(size) for size in sizes]
    if rng is None:
        raise ValueError("sampling parameters (max_parameters) needs rng")
    chosen = []
    for size in sizes:
        quota = min(size, max(1, round(max_parameters * size / total)))
        chosen.append(np.sort(rng.choice(size, size=quota, replace=False)))
    return chosen


def _centered(
    net: Any,
    X: np.ndarray,
    Y: np.ndarray,
    l2: float,
    epsilon: float,
    param: np.ndarray,
    index: tuple[int, ...],
) -> float:
    """(J(θ+ε) − J(θ−ε)) / 2ε for one entry of ``param``, which is restored exactly."""
    saved = param[index].copy()
    try:
        param[index] = saved + epsilon
        plus = float(net.cost(X, Y, l2))
        param[index] = saved - epsilon
        minus = float(net.cost(X, Y, l2))
    finally:
        param[index] = saved
    return (plus - minus) / (2.0 * epsilon)


def _to_theta(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W (s_l, s_{l+1}) and b (s_{l+1},) → Θ (s_{l+1}, s_l + 1), bias in column 0."""
    return np.column_stack([np.asarray(b, dtype=np.float64), np.asarray(W, dtype=np.float64).T])


def _relative_difference(numerical: np.ndarray, analytic: np.ndarray) -> float:
    """‖num − ana‖ / ‖num + ana‖; 0 when both are exactly zero (nothing to disagree on)."""
    numerator = float(np.linalg.norm(numerical - analytic))
    denominator = float(np.linalg.norm(numerical + analytic))
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def _worst(numerical: list[np.ndarray], analytic: list[np.ndarray]) -> WorstParameter:
    best: WorstParameter | None = None
    for layer, (n, a) in enumerate(zip(numerical, analytic, strict=True)):
        diff = np.where(np.isnan(n), -1.0, np.abs(n - a))  # unchecked entries never win
        row, col = np.unravel_index(int(np.argmax(diff)), diff.shape)
        if best is None or diff[row, col] > best.abs_diff:
            best = WorstParameter(
                layer=layer + 1,
                index=(int(row), int(col)),
                numerical=float(n[row, col]),
                analytic=float(a[row, col]),
                abs_diff=float(diff[row, col]),
            )
    assert best is not None, "a network has at least one layer of weights"
    return best


def _json_float(value: float) -> float | None:
    """JSON has no infinity: a relative difference that is not finite is reported as null."""
    return value if math.isfinite(value) else None


def _json_matrix(values: np.ndarray) -> list[list[float | None]]:
    """Rows of floats, unchecked (NaN) entries as null."""
    return [[None if math.isnan(v) else v for v in row] for row in values.tolist()]
