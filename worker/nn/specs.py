"""Dict specs for notebooks: a network from a spec shaped like the API's.

The worker does not use this: it builds from a validated ``JobSpec`` (``service.build``).
Here the dict may leave things out; what it leaves out takes the engine's defaults,
which equal the API's (tests/worker/test_build.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._types import Array
from .errors import SpecError
from .initializers import wb_from_theta
from .network import Network, _check_architecture


def network_from_spec(
    spec: Mapping[str, Any],
    n_inputs: int,
    n_outputs: int,
    rng: np.random.Generator | None = None,
    dtype: str | np.dtype[Any] = "float64",
) -> Network:
    """Build a network from the API's network spec dict.

    ``spec``: ``{"layers": [{"units", "activation"}, ...], "output": {"activation"},
    "loss", "init": {"scheme"} | {"weights": {"format": "theta"|"wb", "layers": [...]}}}``.
    Random schemes draw from ``rng`` (a ``numpy.random.Generator`` from the job's seed).
    """
    try:
        hidden = list(spec.get("layers") or [])
        sizes = [int(n_inputs)] + [int(layer["units"]) for layer in hidden] + [int(n_outputs)]
        activations = [str(layer["activation"]) for layer in hidden]
        activations.append(str(spec["output"]["activation"]))
        loss = str(spec["loss"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"malformed network spec: {exc!r}") from exc
    init = spec.get("init") or {}
    _check_architecture(sizes, activations, loss)
    if "weights" in init:
        weights, biases = _explicit_weights(init["weights"])
        return Network(sizes, activations, loss, weights, biases, dtype)
    if "scheme" in init:  # else Network.initialized's default, which is the API's
        return Network.initialized(sizes, activations, loss, str(init["scheme"]), rng, dtype)
    return Network.initialized(sizes, activations, loss, rng=rng, dtype=dtype)


def _explicit_weights(spec: Mapping[str, Any]) -> tuple[list[Array], list[Array]]:
    layout = spec.get("format")
    layers = spec.get("layers") or []
    try:
        if layout == "theta":
            pairs = [wb_from_theta(np.asarray(theta, dtype=np.float64)) for theta in layers]
            return [W for W, _ in pairs], [b for _, b in pairs]
        if layout == "wb":
            weights = [np.asarray(layer["W"], dtype=np.float64) for layer in layers]
            biases = [np.asarray(layer["b"], dtype=np.float64) for layer in layers]
            return weights, biases
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"malformed explicit weights: {exc!r}") from exc
    raise SpecError(f"weights format must be 'theta' or 'wb', got {layout!r}")
