"""The scenarios' jobs: a 2-8-2 network on 200 two-moons samples.

Mini-batches of 4 make an epoch slow enough (~50 steps) that a fault lands mid-run, and
they draw a shuffle from the generator every epoch, so a resume must restore the
generator state exactly — besides weights and Adam's moments — to match bit for bit.
"""

from __future__ import annotations

from typing import Any

EPOCHS = 200


# Training variants, so a resume must also restore early-stopping state (best weights,
# patience counter), a plateau schedule's state, momentum buffers, and float32 weights.
VARIANTS: list[dict[str, Any]] = [
    {"optimizer": {"name": "adam", "learning_rate": 0.01}},
    {
        "optimizer": {"name": "nesterov", "learning_rate": 0.05, "momentum": 0.9},
        "lr_schedule": {"name": "plateau", "factor": 0.5, "patience": 5, "min_delta": 1e-3},
        "l2": 0.01,
    },
    {
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "early_stopping": {"patience": 40, "min_delta": 1e-4},
        "dtype": "float32",
    },
]


def tiny_job(name: str, seed: int = 0, epochs: int = EPOCHS, variant: int = 0) -> dict[str, Any]:
    """A job spec; ``variant`` picks one of ``VARIANTS`` (default: plain Adam)."""
    return {
        "name": name,
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
            "init": {"scheme": "glorot"},
        },
        "dataset": {
            "generator": "moons",
            "n_samples": 200,
            "noise": 0.2,
            "seed": 7,
            "validation_split": 0.2,
            "standardize": True,
        },
        "training": {
            "epochs": epochs,
            "batch_size": 4,
            "seed": seed,
            **VARIANTS[variant % len(VARIANTS)],
        },
    }
