"""Weight initialisation schemes and the conversions between the two weight layouts.

Layouts (see the numerics contract):

- W/b: ``W`` of shape (n_in, n_out) and ``b`` of shape (n_out,), used by the engine;
- Θ (Ng): ``theta`` of shape (n_out, n_in + 1), the bias in column 0.

Each scheme is ``init(n_in, n_out, rng) -> (W, b)`` in float64; the network casts to its
dtype, so float32 and float64 networks built from one seed start from the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._types import Array

Initializer = Callable[[int, int, np.random.Generator], tuple[Array, Array]]


def ng_epsilon(n_in: int, n_out: int) -> float:
    """Ng's ε_init = √6 / √(L_in + L_out)."""
    return math.sqrt(6.0) / math.sqrt(n_in + n_out)


def init_ng(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Ng's randInitializeWeights: all of Θ (bias column included) uniform in ±ε_init."""
    eps = ng_epsilon(n_in, n_out)
    theta = rng.uniform(-eps, eps, size=(n_out, n_in + 1))
    return wb_from_theta(theta)


def init_glorot(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """Glorot/Xavier uniform: W in ±√(6 / (n_in + n_out)), biases zero."""
    limit = math.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_in, n_out)), np.zeros(n_out)


def init_he(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """He normal: W ~ N(0, 2 / n_in), biases zero (for ReLU layers)."""
    return rng.normal(0.0, math.sqrt(2.0 / n_in), size=(n_in, n_out)), np.zeros(n_out)


def init_zeros(n_in: int, n_out: int, rng: np.random.Generator) -> tuple[Array, Array]:
    """All zeros: every hidden unit stays identical (for teaching symmetry breaking)."""
    return np.zeros((n_in, n_out)), np.zeros(n_out)


INITIALIZERS: dict[str, Initializer] = {
    "ng": init_ng,
    "glorot": init_glorot,
    "he": init_he,
    "zeros": init_zeros,
}
"""Name → scheme; the names are the API's vocabulary."""


def theta_from_wb(W: Array, b: Array) -> Array:
    """Θ (n_out, n_in + 1) with the bias in column 0, from W (n_in, n_out) and b (n_out,)."""
    return np.concatenate([np.asarray(b)[:, None], np.asarray(W).T], axis=1)


def wb_from_theta(theta: Array) -> tuple[Array, Array]:
    """(W (n_in, n_out), b (n_out,)) from Θ (n_out, n_in + 1); both are fresh C arrays."""
    theta = np.asarray(theta)
    if theta.ndim != 2 or theta.shape[1] < 2:
        raise ValueError(f"theta must have shape (n_out, n_in + 1), got {theta.shape}")
    return np.ascontiguousarray(theta[:, 1:].T), np.array(theta[:, 0])
