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
- Each dimension on its own (univariate TPE): ``l(x)`` is a Parzen mixture of the good
  values, ``g(x)`` of the bad ones, each value a Gaussian truncated to the range plus one
  prior component (the middle of the range, σ = the range), all weighted equally. A
  component's σ is the larger gap to its sorted neighbours, clipped to
  ``[range / min(100, n + 2), range]`` (hyperopt's and Optuna's rule). ``loguniform`` works
  in log space; ``randint`` on ``[lo - 0.5, hi + 0.5]`` with the mass of ``[k ± 0.5]`` as the
  probability of ``k``; ``choice`` with the share ``(count + 1/K) / (n + 1)`` of each option.
- ``candidates`` draws from ``l`` per dimension; the one with the largest
  ``log l(x) - log g(x)`` is the trial's value.

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
    good = [everyone[i] for i in order[:n_good]]
    bad = [everyone[i] for i in order[n_good:]]
    params = {}
    for dim in dims:
        below = _coordinates(dim, good)
        above = _coordinates(dim, bad)
        params[dim.path] = dim.external(_best_candidate(dim, below, above, rng, candidates))
    return params


def _coordinates(dim: Dimension, params: Sequence[Mapping[str, Any]]) -> np.ndarray:
    xs = [dim.internal(p[dim.path]) for p in params if dim.path in p]
    return np.array([x for x in xs if x is not None], dtype=np.float64)


def _uniform(dim: Dimension, rng: np.random.Generator) -> float:
    if dim.kind == "choice":
        return float(rng.integers(len(dim.options)))
    if dim.kind == "randint":
        return float(rng.integers(round(dim.low + 0.5), round(dim.high - 0.5), endpoint=True))
    return float(rng.uniform(dim.low, dim.high))


def _best_candidate(
    dim: Dimension, below: np.ndarray, above: np.ndarray, rng: np.random.Generator, count: int
) -> float:
    if dim.kind == "choice":
        k = len(dim.options)
        p_below, p_above = _categorical(below, k), _categorical(above, k)
        draws = rng.choice(k, size=count, p=p_below)
        scores = np.log(p_below[draws]) - np.log(p_above[draws])
        return float(draws[int(np.argmax(scores))])
    lower = Parzen.fit(below, dim.low, dim.high)
    upper = Parzen.fit(above, dim.low, dim.high)
    draws = lower.sample(rng, count)
    if dim.kind == "randint":
        draws = np.round(draws)
        scores = lower.log_mass(draws) - upper.log_mass(draws)
    else:
        scores = lower.log_pdf(draws) - upper.log_pdf(draws)
    return float(draws[int(np.argmax(scores))])


def _categorical(indices: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(indices.astype(np.int64), minlength=k).astype(np.float64)
    return (counts + PRIOR_WEIGHT / k) / (len(indices) + PRIOR_WEIGHT)


@dataclass(frozen=True)
class Parzen:
    """A mixture of Gaussians truncated to [low, high], equally weighted."""

    mus: np.ndarray
    sigmas: np.ndarray
    low: float
    high: float

    @classmethod
    def fit(cls, xs: np.ndarray, low: float, high: float) -> Parzen:
        width = high - low
        prior = (low + high) / 2.0
        mus = np.append(xs, prior)
        order = np.argsort(mus, kind="stable")
        ranked = mus[order]
        # Each point's σ: the larger gap to its sorted neighbours (the range's ends at the ends).
        padded = np.concatenate(([low], ranked, [high]))
        gaps = np.maximum(padded[1:-1] - padded[:-2], padded[2:] - padded[1:-1])
        sigmas = np.empty_like(mus)
        sigmas[order] = gaps
        sigmas = np.clip(sigmas, width / min(100.0, len(mus) + 1.0), width)
        sigmas[-1] = width  # the prior component
        return cls(mus, sigmas, low, high)

    def _mass(self) -> np.ndarray:
        """Each component's probability inside [low, high] (its truncation constant)."""
        upper = _phi((self.high - self.mus) / self.sigmas)
        lower = _phi((self.low - self.mus) / self.sigmas)
        return np.maximum(upper - lower, 1e-300)

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        picks = rng.integers(len(self.mus), size=count)
        out = rng.normal(self.mus[picks], self.sigmas[picks])
        for _ in range(100):  # rejection: redraw what fell outside the range
            outside = (out < self.low) | (out > self.high)
            if not outside.any():
                break
            out[outside] = rng.normal(self.mus[picks[outside]], self.sigmas[picks[outside]])
        return np.clip(out, self.low, self.high)

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, None] - self.mus[None, :]) / self.sigmas[None, :]
        dens = np.exp(-0.5 * z**2) / (self.sigmas * math.sqrt(2 * math.pi) * self._mass())
        return np.log(np.maximum(dens.mean(axis=1), 1e-300))

    def log_mass(self, k: np.ndarray) -> np.ndarray:
        """log P(k) for integers k: each component's mass on [k - 0.5, k + 0.5]."""
        top = _phi((k[:, None] + 0.5 - self.mus[None, :]) / self.sigmas[None, :])
        bottom = _phi((k[:, None] - 0.5 - self.mus[None, :]) / self.sigmas[None, :])
        return np.log(np.maximum(((top - bottom) / self._mass()).mean(axis=1), 1e-300))


def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF."""
    erf = np.asarray(_erf(np.asarray(z) / _SQRT2), dtype=np.float64)
    return 0.5 * (1.0 + erf)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
