"""Small networks shared by the gradient-check, trace and backprop API tests."""

from __future__ import annotations

import numpy as np

from worker.nn import Network, network_from_spec


def build_net(sizes, hidden, output, loss, thetas=None, seed=0) -> Network:
    """A float64 network with layer sizes ``sizes``; explicit Θ weights, else ng from ``seed``."""
    init = (
        {"weights": {"format": "theta", "layers": [np.asarray(t).tolist() for t in thetas]}}
        if thetas is not None
        else {"scheme": "ng"}
    )
    spec = {
        "layers": [{"units": u, "activation": hidden} for u in sizes[1:-1]],
        "output": {"activation": output},
        "loss": loss,
        "init": init,
    }
    return network_from_spec(
        spec, sizes[0], sizes[-1], rng=np.random.default_rng(seed), dtype="float64"
    )


def debug_weights(fan_out: int, fan_in: int) -> np.ndarray:
    """Ng's debugInitializeWeights: sin(1..n)/10 filled column-major into (fan_out, 1 + fan_in)."""
    n = fan_out * (1 + fan_in)
    return np.reshape(np.sin(np.arange(1, n + 1)), (fan_out, 1 + fan_in), order="F") / 10
