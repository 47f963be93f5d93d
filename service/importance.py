"""Which varied parameter mattered: a first-order variance decomposition over binned
parameters, in numpy (pure: no database). docs/compare.md explains it for users.

For trials i = 1..n with a metric value and a value of each varied parameter:

1. The metric is replaced by its ranks (ties averaged): one diverged run with a huge loss
   must not own the variance, and the answer is the same for any monotone transform of
   the metric (so ``mode`` does not change it).
2. Each parameter splits the trials into groups: its distinct values when it is not a
   number, or has at most ``max_bins`` of them, or at most 10 each taken by 2 trials or
   more (a grid's axis, a choice); else ``max_bins`` = clip(floor(sqrt(n / 2)), 2, 10)
   quantile bins (the same bins for x and log x, so log-uniform ranges need nothing
   special). A trial without the parameter is a group of its own.
3. Per parameter, the share of the rank variance explained by its groups, corrected for
   the share that k groups explain by chance: omega squared,
   ω² = (SS_between − (k − 1) MS_within) / (SS_total + MS_within), clipped at 0.
   A parameter that is pure noise gets ≈ 0 however many values it has.
4. ``importance`` = ω² / Σ ω² over the parameters (≥ 0, sums to 1). When no parameter
   explains anything (Σ ω² = 0) the shares are equal and ``explained`` is 0.

What it cannot tell (also in docs/compare.md): effects that exist only in combination
(a parameter that matters only for some value of another: interactions are not
attributed); causes among parameters that moved together (a TPE search or PBT draws later
values from earlier results, so their parameters are correlated and share credit
arbitrarily); anything with few trials per group (every group needs a few trials; the
answer says when it is thin); and whether a parameter matters outside the ranges swept.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_TRIALS = 3
MAX_GROUPS = 10  # a numeric parameter with more distinct values (or singletons) is binned
METHOD = "binned-omega-squared"


@dataclass(frozen=True)
class ParamImportance:
    name: str
    importance: float  # share of the explained variance, sums to 1 over the parameters
    omega_squared: float  # share of the metric's rank variance it explains alone, >= 0
    groups: int  # distinct values or bins the trials fell into


@dataclass(frozen=True)
class Importance:
    n_trials: int
    explained: float  # sum of omega squared, capped at 1: how much first-order effects explain
    params: list[ParamImportance]
    warnings: list[str] = field(default_factory=list)


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of ``values`` (shape (n,)), ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values), dtype=np.float64)
    ranked[order] = np.arange(len(values), dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranked)
    return (sums / counts)[inverse]


def groups_of(column: Sequence[Any], max_bins: int) -> np.ndarray:
    """Group labels (shape (n,), ints) for one parameter's values across the trials."""
    numeric = [
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in column
    ]
    keys = [json.dumps(v, sort_keys=True) for v in column]
    distinct = Counter(keys)
    repeated = len(distinct) <= MAX_GROUPS and min(distinct.values()) >= 2  # a grid's axis
    if len(distinct) <= max_bins or repeated or not all(numeric):
        index = {key: i for i, key in enumerate(sorted(distinct))}
        return np.array([index[key] for key in keys], dtype=np.int64)
    x = np.asarray(column, dtype=np.float64)
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, max_bins + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right").astype(np.int64)


def omega_squared(y: np.ndarray, groups: np.ndarray) -> float:
    """ω² of ``y`` (shape (n,)) explained by ``groups`` (shape (n,)), clipped at 0."""
    n = len(y)
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    k = len(labels)
    if k < 2 or n - k < 1:
        return 0.0  # one group explains nothing; one trial per group leaves no error term
    mean = y.mean()
    group_means = np.bincount(inverse, weights=y) / counts
    ss_total = float(((y - mean) ** 2).sum())
    ss_between = float((counts * (group_means - mean) ** 2).sum())
    if ss_total <= 0.0:
        return 0.0
    ms_within = (ss_total - ss_between) / (n - k)
    return max(0.0, (ss_between - (k - 1) * ms_within) / (ss_total + ms_within))


def importance(
    names: Sequence[str], params: Sequence[Mapping[str, Any]], values: Sequence[float]
) -> Importance:
    """Importance of each of ``names`` for ``values`` (one per trial; ``params[i]`` is trial
    i's ``{name: value}``). Needs at least ``MIN_TRIALS`` trials (ValueError otherwise)."""
    n = len(values)
    if n < MIN_TRIALS:
        raise ValueError(f"needs at least {MIN_TRIALS} trials with a value, has {n}")
    y = ranks(np.asarray(values, dtype=np.float64))
    max_bins = int(min(10, max(2, math.floor(math.sqrt(n / 2)))))
    found = []
    warnings = []
    for name in names:
        groups = groups_of([p.get(name) for p in params], max_bins)
        k = len(np.unique(groups))
        found.append((name, omega_squared(y, groups), k))
        if k > 1 and n / k < 3:
            warnings.append(f"{name}: {n} trials in {k} groups; fewer than 3 per group is thin")
    total = sum(w for _, w, _ in found)
    if names and total == 0.0:
        warnings.append("no parameter explains the metric on its own (first order)")
    shares = [w / total if total > 0 else 1.0 / len(found) for _, w, _ in found]
    result = [
        ParamImportance(name, round(share, 6), round(w, 6), k)
        for (name, w, k), share in zip(found, shares, strict=True)
    ]
    result.sort(key=lambda p: (-p.importance, p.name))
    return Importance(n, round(min(total, 1.0), 6), result, warnings)
