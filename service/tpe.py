"""The tree-structured Parzen estimator (Bergstra et al., 2011) in numpy: the next trial of
a search, drawn from every result so far.

Pure functions over plain values; ``service.searches`` feeds them from the database and the
benchmark feeds them in memory. A *space* maps dotted paths to the distributions of a random
sweep (``{"uniform": [a, b]}``, ``{"loguniform": [a, b]}``, ``{"randint": [lo, hi]}``,
``{"choice": [v, ...]}``). Observations are ``(params, value)`` with **lower values better**
(the caller signs a metric to be maximised); a failed trial's value is ``inf``.

- Until ``startup`` observations exist, a trial is a random draw from the space.
- Then the observations are split: the best ``n_good = min(ceil(0.1 n), 25)`` are *good*
  (Optuna's default γ), the rest *bad*. **Pending trials** (created, not finished) join the
  bad ones with the worst possible value — the *constant liar*: a new trial is steered away
  from the ones still in flight instead of repeating them.
- ``l(x)`` is a Parzen mixture over the good trials, ``g(x)`` over the bad ones: one
  *product kernel* per trial across all dimensions (multivariate TPE, Falkner et al.,
  2018, as Optuna 5 samples by default) plus one prior kernel, all weighted equally. Per
  dimension a trial's kernel is a Gaussian truncated to the range, its σ the larger gap to
  its sorted neighbours among the trials (the range's ends beside the first and last),
  clipped to ``[range / min(100, n + 2), range]``; the prior's is centred on the range with
  σ = the range. ``loguniform`` works in log space; ``randint`` on ``[lo - 0.5, hi + 0.5]``
  with the mass of ``[k ± 0.5]`` as the probability of ``k``; ``choice`` gives a trial's
  option the weight 1 + 1/(n + 1) beside 1/(n + 1) for every option (the prior's kernel
  is uniform).
- ``candidates`` whole trials are drawn from ``l`` (a kernel, then every dimension from
  it); the one with the largest ``log l(x) - log g(x)`` is the next trial.

The same inputs and generator give the same trial: ``suggest`` is reproducible.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GOOD_FRACTION = 0.1
MAX_GOOD = 25
PRIOR_WEIGHT = 1.0
_SQRT2 = math.sqrt(2.0)
_erf = np.frompyfunc(math.erf, 1, 1)


@dataclass(frozen=True)
class Dimension:
    """One path of a space, in the working coordinates (log for loguniform)."""

    path: str
    kind: str  # uniform | loguniform | randint | choice
    low: float = 0.0
    high: float = 0.0
    options: tuple[Any, ...] = ()

    def internal(self, value: Any) -> float | None:
        """An observed value in working coordinates; None if it is not in the space."""
        if self.kind == "choice":
            wanted = _canonical(value)
            found = [i for i, o in enumerate(self.options) if _canonical(o) == wanted]
            return float(found[0]) if found else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if self.kind == "loguniform":
            return math.log(value) if value > 0 else None
        return float(value)

    def external(self, x: float) -> Any:
        """A working coordinate back to a spec value."""
        if self.kind == "choice":
            return copy.deepcopy(self.options[int(x)])
        if self.kind == "randint":
            return int(min(max(round(x), self.low + 0.5), self.high - 0.5))
        if self.kind == "loguniform":
            return float(math.exp(min(max(x, self.low), self.high)))
        return float(min(max(x, self.low), self.high))


def dimensions(space: Mapping[str, Mapping[str, Any]]) -> list[Dimension]:
    """The space's dimensions in its order (the space was checked by ``service.sweeps``)."""
    dims = []
    for path, dist in space.items():
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            dims.append(Dimension(path, kind, options=tuple(args)))
        elif kind == "loguniform":
            dims.append(Dimension(path, kind, math.log(args[0]), math.log(args[1])))
        elif kind == "randint":
            dims.append(Dimension(path, kind, args[0] - 0.5, args[1] + 0.5))
        else:
            dims.append(Dimension(path, kind, float(args[0]), float(args[1])))
    return dims


def suggest(
    space: Mapping[str, Mapping[str, Any]],
    observations: Sequence[tuple[Mapping[str, Any], float]],
    pending: Sequence[Mapping[str, Any]],
    rng: np.random.Generator,
    *,
    startup: int = 10,
    candidates: int = 24,
) -> dict[str, Any]:
    """The next trial's ``{path: value}`` (see the module docstring)."""
    dims = dimensions(space)
    if len(observations) < startup:
        return {d.path: d.external(_uniform(d, rng)) for d in dims}
    values = [v if math.isfinite(v) else math.inf for _, v in observations]
    ranked = [*zip(values, range(len(values)), strict=True)]
    ranked += [(math.inf, len(values) + i) for i in range(len(pending))]
    everyone = [p for p, _ in observations] + list(pending)
    n_good = min(math.ceil(GOOD_FRACTION * len(ranked)), MAX_GOOD)
    order = [i for _, i in sorted(ranked)]
    good = _coordinates(dims, [everyone[i] for i in order[:n_good]])
    bad = _coordinates(dims, [everyone[i] for i in order[n_good:]])
    lower = [_kernels(d, good[:, k]) for k, d in enumerate(dims)]
    upper = [_kernels(d, bad[:, k]) for k, d in enumerate(dims)]
    # Draw whole candidates from l: a component (an observation, or the prior), then each
    # dimension from that component's kernel.
    picks = rng.integers(len(good) + 1, size=candidates)
    draws = np.stack([kernel.sample(picks, rng) for kernel in lower], axis=1)
    score = _log_mixture(lower, draws) - _log_mixture(upper, draws)
    best = draws[int(np.argmax(score))]
    return {d.path: d.external(float(best[k])) for k, d in enumerate(dims)}


def _coordinates(dims: Sequence[Dimension], params: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n, d) working coordinates of the trials that have a value in every dimension."""
    rows = []
    for p in params:
        row = [d.internal(p[d.path]) if d.path in p else None for d in dims]
        if all(x is not None for x in row):
            rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(dims))


def _uniform(dim: Dimension, rng: np.random.Generator) -> float:
    if dim.kind == "choice":
        return float(rng.integers(len(dim.options)))
    if dim.kind == "randint":
        return float(rng.integers(round(dim.low + 0.5), round(dim.high - 0.5), endpoint=True))
    return float(rng.uniform(dim.low, dim.high))


def _log_mixture(kernels: Sequence[Kernels], draws: np.ndarray) -> np.ndarray:
    """log of the equally weighted mixture of product kernels at each draw: (c,)."""
    joint = np.sum([kernel.log_prob(draws[:, k]) for k, kernel in enumerate(kernels)], axis=0)
    top = joint.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(joint - top).mean(axis=1))


class Kernels:
    """One dimension's kernels: one per observation, then the prior's."""

    def sample(self, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """(c, components): the log density (or probability) of each draw in each kernel."""
        raise NotImplementedError


def _kernels(dim: Dimension, xs: np.ndarray) -> Kernels:
    if dim.kind == "choice":
        return Categorical.fit(xs, len(dim.options))
    return Parzen.fit(xs, dim.low, dim.high, discrete=dim.kind == "randint")


@dataclass(frozen=True)
class Categorical(Kernels):
    """Per observation: its option, smoothed by the prior; the prior kernel is uniform."""

    probs: np.ndarray  # (components, k)

    @classmethod
    def fit(cls, indices: np.ndarray, k: int) -> Categorical:
        n = len(indices)
        probs = np.full((n + 1, k), PRIOR_WEIGHT / (n + 1))
        probs[np.arange(n), indices.astype(np.int64)] += 1.0
        return cls(probs / probs.sum(axis=1, keepdims=True))

    def sample(self, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cumulative = np.cumsum(self.probs[picks], axis=1)
        u = rng.random(len(picks))[:, None]
        return np.minimum((u > cumulative).sum(axis=1), self.probs.shape[1] - 1).astype(float)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return np.log(self.probs[:, x.astype(np.int64)].T)


@dataclass(frozen=True)
class Parzen(Kernels):
    """Gaussians truncated to [low, high]; ``discrete``: the mass of [k - 0.5, k + 0.5]."""

    mus: np.ndarray
    sigmas: np.ndarray
    low: float
    high: float
    discrete: bool = False

    @classmethod
    def fit(cls, xs: np.ndarray, low: float, high: float, discrete: bool = False) -> Parzen:
        width = high - low
        # Each value's σ: the larger gap to its sorted neighbours (the range's ends at the ends).
        order = np.argsort(xs, kind="stable")
        padded = np.concatenate(([low], xs[order], [high]))
        gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
        sigmas = np.empty_like(xs)
        sigmas[order] = gaps
        sigmas = np.clip(sigmas, width / min(100.0, len(xs) + 2.0), width)
        # The prior component: the middle of the range, σ = the range.
        mus = np.append(xs, (low + high) / 2.0)
        return cls(mus, np.append(sigmas, width), low, high, discrete)

    def _mass(self) -> np.ndarray:
        """Each component's probability inside [low, high] (its truncation constant)."""
        upper = _phi((self.high - self.mus) / self.sigmas)
        lower = _phi((self.low - self.mus) / self.sigmas)
        return np.maximum(upper - lower, 1e-300)

    def sample(self, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = rng.normal(self.mus[picks], self.sigmas[picks])
        for _ in range(100):  # rejection: redraw what fell outside the range
            outside = (out < self.low) | (out > self.high)
            if not outside.any():
                break
            out[outside] = rng.normal(self.mus[picks[outside]], self.sigmas[picks[outside]])
        out = np.clip(out, self.low, self.high)
        return np.clip(np.round(out), self.low + 0.5, self.high - 0.5) if self.discrete else out

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        if self.discrete:
            top = _phi((x[:, None] + 0.5 - self.mus[None, :]) / self.sigmas[None, :])
            bottom = _phi((x[:, None] - 0.5 - self.mus[None, :]) / self.sigmas[None, :])
            return np.log(np.maximum((top - bottom) / self._mass(), 1e-300))
        z = (x[:, None] - self.mus[None, :]) / self.sigmas[None, :]
        dens = np.exp(-0.5 * z**2) / (self.sigmas * math.sqrt(2 * math.pi) * self._mass())
        return np.log(np.maximum(dens, 1e-300))


def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF."""
    erf = np.asarray(_erf(np.asarray(z) / _SQRT2), dtype=np.float64)
    return 0.5 * (1.0 + erf)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
