"""Small seeded datasets for engine tests: X float64 (n, d), Y one-hot (n, K) or targets.

The engine's tests stay free of the service, so these are written here rather than taken
from ``service.generators`` (which the API and the e2e tests use).
"""

from __future__ import annotations

import numpy as np


def spirals(n_per_class=100, classes=3, noise=0.1, seed=0):
    """Interleaved spiral arms, one per class (cs231n's toy problem)."""
    rng = np.random.default_rng(seed)
    X, labels = [], []
    for k in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(k * 4.0, (k + 1) * 4.0, n_per_class) + rng.normal(0, noise, n_per_class)
        X.append(np.column_stack([r * np.sin(t), r * np.cos(t)]))
        labels.append(np.full(n_per_class, k))
    y = np.concatenate(labels)
    return np.concatenate(X), np.eye(classes)[y]


def blobs(n=120, seed=0):
    """Two Gaussian clouds around (-1, -1) and (1, 1): nearly separable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)
    return X, np.eye(2)[y]


def moons(n=200, noise=0.1, seed=0):
    """Two interleaved half circles (scikit-learn's make_moons), shuffled."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.linspace(0.0, np.pi, half)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    X = np.concatenate([upper, lower]) + rng.normal(0, noise, (2 * half, 2))
    y = np.repeat([0, 1], half)
    order = rng.permutation(2 * half)
    return X[order], np.eye(2)[y[order]]


def circles(n=200, noise=0.05, factor=0.5, seed=0):
    """A ring around a smaller ring (scikit-learn's make_circles), one sigmoid target."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t = rng.uniform(0.0, 2 * np.pi, 2 * half)
    radius = np.where(np.arange(2 * half) < half, 1.0, factor)
    X = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    X += rng.normal(0, noise, X.shape)
    y = (np.arange(2 * half) >= half).astype(np.float64)
    return X, y[:, None]


def sine(n=200, noise=0.05, seed=0):
    """y = sin(x) + noise on x in [-3, 3]: a one-input regression."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, n)
    return x[:, None], (np.sin(x) + rng.normal(0, noise, n))[:, None]
