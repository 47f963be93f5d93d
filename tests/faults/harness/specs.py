"""The scenarios' jobs: a 2-8-2 network on 200 two-moons samples.

Mini-batches of 4 make an epoch slow enough (~50 steps) that a fault lands mid-run, and
they draw a shuffle from the generator every epoch, so a resume must restore the
generator state exactly — besides weights and Adam's moments — to match bit for bit.
"""

from __future__ import annotations

from typing import Any

EPOCHS = 200


def tiny_job(name: str, seed: int = 0, epochs: int = EPOCHS) -> dict[str, Any]:
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
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": epochs,
            "batch_size": 4,
            "seed": seed,
        },
    }
