"""Built-in datasets: seeded, deterministic, numpy only.

``generate(spec)`` returns the same bits for the same spec on every host, so a job that
names a generator needs no stored blob. Every generator draws from one
``numpy.random.Generator`` seeded by ``spec.seed``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from service.dataset_arrays import DatasetArrays
from service.schemas.spec import (
    CirclesSpec,
    GaussiansSpec,
    GeneratorSpec,
    MoonsSpec,
    PlaneSpec,
    SineSpec,
    SpiralsSpec,
    XorSpec,
)

_ADAPTER: TypeAdapter[Any] = TypeAdapter(GeneratorSpec)


def parse(spec: Any) -> Any:
    """A generator spec model from a dict (or the model itself), defaults filled in."""
    if isinstance(spec, dict):
        # The stored job spec also carries dataset options; the generator ignores them.
        return _ADAPTER.validate_python(spec)
    return spec


def describe(spec: Any) -> tuple[str, int, int]:
    """(task, n_features, n_outputs) of a generator spec, without generating it."""
    spec = parse(spec)
    match spec:
        case XorSpec() | CirclesSpec() | MoonsSpec():
            return "classification", 2, 2
        case SpiralsSpec():
            return "classification", 2, spec.n_classes
        case GaussiansSpec():
            return "classification", spec.n_features, spec.n_classes
        case PlaneSpec():
            return "regression", spec.n_features, 1
        case SineSpec():
            return "regression", 1, 1
    raise ValueError(f"unknown generator spec {spec!r}")


def generate(spec: Any) -> DatasetArrays:
    """The dataset a generator spec describes; X float64 (n_samples, n_features)."""
    spec = parse(spec)
    rng = np.random.default_rng(spec.seed)
    X, y = GENERATORS[spec.generator](spec, rng)
    # Shuffle so that any contiguous validation split sees every class.
    order = rng.permutation(spec.n_samples)
    X, y = np.ascontiguousarray(X[order]), y[order]
    task, _, n_outputs = describe(spec)
    if task == "classification":
        # Classes come from the spec, not the sample: a tiny sample may miss one.
        classes = list(range(n_outputs))
        return DatasetArrays(X=X, y=y.astype(np.int64), task=task, classes=classes)
    return DatasetArrays(X=X, y=y.astype(np.float64), task=task, classes=None)


def _split(n: int, k: int) -> np.ndarray:
    """Class sizes for n samples over k classes, as equal as possible: shape (k,)."""
    return np.full(k, n // k) + (np.arange(k) < n % k)


def _labels(sizes: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


def _xor(spec: XorSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Four noisy clusters at the corners (±1, ±1); the class is whether the signs differ.
    corners = rng.integers(0, 2, size=(spec.n_samples, 2))
    X = 2.0 * corners - 1.0 + spec.noise * rng.standard_normal((spec.n_samples, 2))
    y = corners[:, 0] ^ corners[:, 1]
    return X, y


def _circles(spec: CirclesSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sizes = _split(spec.n_samples, 2)
    y = _labels(sizes)
    angle = rng.uniform(0.0, 2.0 * np.pi, spec.n_samples)
    radius = np.where(y == 0, 1.0, spec.factor)
    X = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    return X + spec.noise * rng.standard_normal(X.shape), y


def _moons(spec: MoonsSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sizes = _split(spec.n_samples, 2)
    y = _labels(sizes)
    t = rng.uniform(0.0, np.pi, spec.n_samples)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    X = np.where((y == 0)[:, None], upper, lower)
    return X + spec.noise * rng.standard_normal(X.shape), y


def _spirals(spec: SpiralsSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # cs231n-style arms: radius grows from 0 to 1 while the angle turns; arms are rotated copies.
    sizes = _split(spec.n_samples, spec.n_classes)
    y = _labels(sizes)
    radius = np.concatenate([np.linspace(0.0, 1.0, s) for s in sizes])
    turn = 4.0 * radius + y * (2.0 * np.pi / spec.n_classes)
    angle = turn + spec.noise * rng.standard_normal(spec.n_samples)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, y


def _gaussians(spec: GaussiansSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sizes = _split(spec.n_samples, spec.n_classes)
    y = _labels(sizes)
    centers = rng.uniform(-3.0, 3.0, size=(spec.n_classes, spec.n_features))
    X = centers[y] + spec.noise * rng.standard_normal((spec.n_samples, spec.n_features))
    return X, y


def _plane(spec: PlaneSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.uniform(-1.0, 1.0, size=(spec.n_samples, spec.n_features))
    coef = rng.uniform(-2.0, 2.0, size=spec.n_features)
    intercept = rng.uniform(-1.0, 1.0)
    y = X @ coef + intercept + spec.noise * rng.standard_normal(spec.n_samples)
    return X, y


def _sine(spec: SineSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-np.pi, np.pi, spec.n_samples)
    y = np.sin(x) + spec.noise * rng.standard_normal(spec.n_samples)
    return x[:, None], y


# Name -> generator; the names are ``schemas.names.GENERATORS`` (tests/service/test_names.py).
GENERATORS: dict[str, Callable[[Any, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "xor": _xor,
    "circles": _circles,
    "moons": _moons,
    "spirals": _spirals,
    "gaussians": _gaussians,
    "plane": _plane,
    "sine": _sine,
}
