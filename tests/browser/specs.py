"""Job specs the browser tests submit (plain dicts, as a client would send them)."""

from __future__ import annotations

import numpy as np

# The API's largest epoch count (Limits.epochs): a run that ends only when a test cancels it.
EPOCHS_UNTIL_CANCELLED = 100_000


def long_job(name: str) -> dict:
    """Trains until cancelled, one flush of curve points at a time, with gradient norms."""
    return {
        "name": name,
        "network": {
            "layers": [{"units": 32, "activation": "tanh"}, {"units": 32, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {
            "generator": "spirals",
            "n_samples": 600,
            "noise": 0.1,
            "seed": 0,
            "validation_split": 0.2,
            "standardize": True,
        },
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.005},
            "epochs": EPOCHS_UNTIL_CANCELLED,
            "batch_size": 8,
            "seed": 1,
            "record": {"grad_norms": True},
        },
    }


def quick_job(name: str, epochs: int = 10, generator: str = "xor") -> dict:
    return {
        "name": name,
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"generator": generator, "n_samples": 100, "seed": 0},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": epochs},
    }


def two_blobs(n: int = 60, seed: int = 3) -> tuple[list[list[float]], list[int]]:
    """Two noisy 2-D clusters with labels 0 and 1 (inline data the boundary can draw)."""
    rng = np.random.default_rng(seed)
    half = n // 2
    X = np.vstack(
        [rng.normal((-1.0, -0.5), 0.45, (half, 2)), rng.normal((1.0, 0.6), 0.45, (n - half, 2))]
    )
    y = [0] * half + [1] * (n - half)
    return np.round(X, 4).tolist(), y


def inline_job(name: str, epochs: int = 150) -> dict:
    X, y = two_blobs()
    return {
        "name": name,
        "network": {
            "layers": [{"units": 6, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"X": X, "y": y, "validation_split": 0.25},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.05},
            "epochs": epochs,
            "record": {"grad_norms": True},
        },
    }
