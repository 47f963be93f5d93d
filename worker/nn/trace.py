"""One backprop pass in Andrew Ng's notation, written out step by step.

This is deliberately *not* the engine's fast path: it rebuilds Ng's Θ^(l) (bias in
column 0), prepends the bias unit to every a^(l), and follows the lecture's formulas

    z^(l+1) = a^(l) Θ^(l)ᵀ                      (rows are examples)
    δ^(L)   = a^(L) − y                          (matched output/loss pairs)
            = ∂J_i/∂a^(L) .* g'(z^(L))           (any other pair)
    δ^(l)   = (δ^(l+1) Θ^(l))[:, 1:] .* g'(z^(l))  (drop the bias column)
    Δ^(l)   = Σ_i δ^(l+1)_i a^(l)_iᵀ
    D^(l)   = Δ^(l)/m + (λ/m) Θ^(l)  (bias column of the regulariser zero)

so that comparing it with ``net.gradients`` checks the fast path too. With
``per_example=True`` the same pass is repeated one example at a time (Ng's
``for t = 1:m`` loop) and each example's contribution δ^(l+1)_t a^(l)_tᵀ is reported; the
contributions add up to Δ^(l).

Layers are numbered as in the lecture: l = 1 is the input, l = L the output, and Θ^(l),
Δ^(l), D^(l) map layer l to layer l+1. numpy and the standard library only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import ACTIVATIONS
from .losses import LOSSES, MATCHED_PAIRS

NOTATION: dict[str, dict[str, str]] = {
    "m": {"shape": "scalar", "meaning": "number of examples"},
    "s_l": {"shape": "scalar", "meaning": "number of units in layer l, not counting the bias"},
    "L": {"shape": "scalar", "meaning": "number of layers; l = 1 is the input, l = L the output"},
    "a": {
        "shape": "(m, s_l + 1) for l < L; (m, K) for l = L",
        "meaning": "activations a^(l), one row per example; for l < L column 0 is the bias "
        "unit a_0^(l) = 1; a^(1) is the input x",
    },
    "z": {
        "shape": "(m, s_l), l >= 2",
        "meaning": "pre-activations z^(l) = a^(l-1) Θ^(l-1)ᵀ, one row per example; "
        "a^(l) = g(z^(l))",
    },
    "delta": {
        "shape": "(m, s_l), l >= 2",
        "meaning": "δ^(l) = ∂J_i/∂z^(l) for each example i (row i): the error of each unit. "
        "δ^(L) = a^(L) − y for matched output/loss pairs; "
        "δ^(l) = (δ^(l+1) Θ^(l))[:, 1:] .* g'(z^(l)) below",
    },
    "Theta": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "weights Θ^(l) from layer l to layer l+1: row j = unit j of layer l+1, "
        "column 0 = its bias, column k = weight from unit k of layer l",
    },
    "Delta": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "accumulator Δ^(l) = Σ_i δ^(l+1)_i a^(l)_iᵀ: the sum over examples of each "
        "example's gradient of its own cost with respect to Θ^(l)",
    },
    "D_data": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "Δ^(l) / m: the gradient of the average data cost",
    },
    "D_reg": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "(λ/m) Θ^(l) with column 0 set to 0: the gradient of the regularisation "
        "term (λ/(2m)) Σ Θ², which never includes the biases",
    },
    "D": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "D^(l) = D_data + D_reg = ∂J/∂Θ^(l), the gradient gradient descent uses",
    },
    "contribution": {
        "shape": "(s_{l+1}, s_l + 1), l < L",
        "meaning": "one example's δ^(l+1)_t a^(l)_tᵀ (outer product); summed over t it is Δ^(l)",
    },
    "cost": {
        "shape": "scalars",
        "meaning": "J = data + regularization; data = the loss averaged over m, "
        "regularization = (λ/(2m)) Σ_l Σ Θ^(l)[:, 1:]²",
    },
}


def ng_trace(
    net: Any,
    X: np.ndarray,
    Y: np.ndarray,
    l2: float = 0.0,
    per_example: bool = False,
) -> dict[str, Any]:
    """Backprop on (X, Y) in Ng's notation, as a JSON-ready dict of nested float lists.

    Parameters
    ----------
    net : Network
        Read only: ``layer_sizes``, ``activations``, ``loss``, ``weights`` (W^(l) of shape
        (s_l, s_{l+1})) and ``biases`` (b^(l) of shape (s_{l+1},)).
    X : ndarray of shape (m, s_1)
    Y : ndarray of shape (m, K)
    l2 : float
        λ.
    per_example : bool
        Also trace each example alone and report its δ and its contribution to Δ.

    Returns
    -------
    dict
        ``layers`` (one entry per layer l = 1..L), ``cost``, ``notation`` and, with
        ``per_example``, ``examples``.
    """
    X, Y, thetas = _in_ng_layout(net, X, Y)
    m = X.shape[0]
    activations = list(net.activations)
    with _quiet():
        pass_ = _backprop(thetas, activations, net.loss, X, Y)

    layers: list[dict[str, Any]] = []
    n_layers = len(thetas) + 1
    for index in range(n_layers):
        entry: dict[str, Any] = {"l": index + 1, "units": int(net.layer_sizes[index])}
        z, delta = pass_.z[index], pass_.delta[index]
        if z is not None:  # every layer but the input
            entry["activation"] = activations[index - 1]
            entry["z"] = z.tolist()
        entry["a"] = pass_.a[index].tolist()
        entry["bias_unit"] = index < n_layers - 1
        if delta is not None:
            entry["delta"] = delta.tolist()
        if index < n_layers - 1:
            theta = thetas[index]
            Delta = pass_.Delta[index]
            D_data = Delta / m
            D_reg = (l2 / m) * theta
            D_reg[:, 0] = 0.0
            entry["Theta"] = theta.tolist()
            entry["Delta"] = Delta.tolist()
            entry["D_data"] = D_data.tolist()
            entry["D_reg"] = D_reg.tolist()
            entry["D"] = (D_data + D_reg).tolist()
        layers.append(entry)

    with _quiet():
        data_cost = float(LOSSES[net.loss].value(pass_.a[-1], Y))
        reg_cost = float(l2 / (2 * m) * sum(float(np.sum(t[:, 1:] ** 2)) for t in thetas))
    result: dict[str, Any] = {
        "m": m,
        "lambda": float(l2),
        "layer_sizes": [int(s) for s in net.layer_sizes],
        "activations": activations,
        "loss": net.loss,
        "output_delta": _output_delta_rule(activations[-1], net.loss),
        "layers": layers,
        "cost": {"data": data_cost, "regularization": reg_cost, "total": data_cost + reg_cost},
        "notation": NOTATION,
    }
    if per_example:
        with _quiet():
            result["examples"] = [
                _example_entry(t, thetas, activations, net.loss, X[t : t + 1], Y[t : t + 1])
                for t in range(m)
            ]
    return result


def delta_norms(net: Any, X: np.ndarray, Y: np.ndarray, l2: float = 0.0) -> dict[str, Any]:
    """How big the errors δ^(l) and gradients D are, layer by layer: the vanishing picture.

    Same pass and notation as ``ng_trace`` (l = 2..L, output last), but only norms, so it
    stays small for any m. Per layer: ``delta_norm`` = ‖δ^(l)‖ (Frobenius, over all
    examples and units), ``delta_rms`` = ‖δ^(l)‖/√(m·s_l), ``delta_ratio`` = its
    ``delta_rms`` over the output layer's, and ``D_norm`` = ‖D^(l-1)‖, the gradient of
    the weights Θ^(l-1) that feed layer l (bias column included, as in ``grad_norms``).

    Returns
    -------
    dict
        ``{"m", "layers": [{"l", "units", "activation", "delta_norm", "delta_rms",
        "delta_ratio", "D_norm"}, ...]}``; non-finite values become None.
    """
    X, Y, thetas = _in_ng_layout(net, X, Y)
    m = X.shape[0]
    with _quiet():
        pass_ = _backprop(thetas, list(net.activations), net.loss, X, Y)
        rows = []
        for index, theta in enumerate(thetas):
            delta = pass_.delta[index + 1]
            assert delta is not None
            regularization = (l2 / m) * theta
            regularization[:, 0] = 0.0
            D = pass_.Delta[index] / m + regularization
            norm = float(np.linalg.norm(delta))
            rows.append(
                {
                    "l": index + 2,
                    "units": int(delta.shape[1]),
                    "activation": net.activations[index],
                    "delta_norm": norm,
                    "delta_rms": norm / np.sqrt(delta.size),
                    "D_norm": float(np.linalg.norm(D)),
                }
            )
    output_rms = rows[-1]["delta_rms"]
    for row in rows:
        row["delta_ratio"] = row["delta_rms"] / output_rms if output_rms else None
        for key, value in row.items():
            if isinstance(value, float) and not np.isfinite(value):
                row[key] = None
    return {"m": m, "layers": rows}


def _in_ng_layout(
    net: Any, X: np.ndarray, Y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """X and Y in float64, and each Θ^(l) = [b W^T] (bias in column 0), in float64."""
    thetas = [
        np.column_stack([np.asarray(b, np.float64), np.asarray(W, np.float64).T])
        for W, b in zip(net.weights, net.biases, strict=True)
    ]
    return np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64), thetas


def _quiet() -> Any:
    """Overflow in a saturated network is the caller's to judge (the values say inf/nan)."""
    return np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


class _Pass:
    """Arrays of one vectorised pass, indexed by layer (0 = Ng's l = 1).

    ``a[i]`` carries the bias column for every layer but the last; ``z[0]`` and
    ``delta[0]`` are None (the input has neither); ``Delta[i]`` maps layer i to i+1.
    """

    def __init__(self) -> None:
        self.a: list[np.ndarray] = []
        self.z: list[np.ndarray | None] = [None]
        self.delta: list[np.ndarray | None] = []
        self.Delta: list[np.ndarray] = []


def _backprop(
    thetas: list[np.ndarray], activations: list[str], loss: str, X: np.ndarray, Y: np.ndarray
) -> _Pass:
    p = _Pass()
    m = X.shape[0]
    ones = np.ones((m, 1))
    a = X
    for theta, name in zip(thetas, activations, strict=True):
        a_with_bias = np.hstack([ones, a])
        p.a.append(a_with_bias)
        z = a_with_bias @ theta.T
        a = ACTIVATIONS[name].forward(z)
        p.z.append(z)
    p.a.append(a)  # the output layer has no bias unit

    # Output layer error.
    z_out = p.z[-1]
    assert z_out is not None
    if (activations[-1], loss) in MATCHED_PAIRS:
        delta = a - Y
    else:
        # ∂J_i/∂a^(L) (one row per example), pushed through g at the output.
        delta = ACTIVATIONS[activations[-1]].backward(LOSSES[loss].gradient(a, Y), z_out, a)
    deltas: list[np.ndarray] = [delta]
    # Hidden errors, from the output back to layer 2: δ^(l) = (δ^(l+1) Θ^(l))[:, 1:] .* g'(z^(l)).
    for layer in range(len(thetas) - 1, 0, -1):
        z = p.z[layer]
        assert z is not None
        back = (deltas[0] @ thetas[layer])[:, 1:]
        g_prime = ACTIVATIONS[activations[layer - 1]].derivative(z, p.a[layer][:, 1:])
        deltas.insert(0, back * g_prime)
    p.delta = [None, *deltas]
    # Accumulators: Δ^(l) = Σ_i δ^(l+1)_i a^(l)_iᵀ, done as one matrix product over i.
    p.Delta = [delta_next.T @ a_l for delta_next, a_l in zip(deltas, p.a[:-1], strict=True)]
    return p


def _example_entry(
    t: int,
    thetas: list[np.ndarray],
    activations: list[str],
    loss: str,
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, Any]:
    """Example t alone (Ng's loop body): its a, z, δ and contribution δ^(l+1) a^(l)ᵀ."""
    p = _backprop(thetas, activations, loss, x, y)
    layers: list[dict[str, Any]] = []
    n_layers = len(thetas) + 1
    for index in range(n_layers):
        entry: dict[str, Any] = {"l": index + 1, "a": p.a[index][0].tolist()}
        z, delta = p.z[index], p.delta[index]
        if z is not None and delta is not None:
            entry["z"] = z[0].tolist()
            entry["delta"] = delta[0].tolist()
        if index < n_layers - 1:
            entry["contribution"] = p.Delta[index].tolist()
        layers.append(entry)
    return {"t": t + 1, "x": x[0].tolist(), "y": y[0].tolist(), "layers": layers}


def _output_delta_rule(activation: str, loss: str) -> str:
    if (activation, loss) in MATCHED_PAIRS:
        return f"matched pair ({activation}, {loss}): δ^(L) = a^(L) − y"
    return f"unmatched pair ({activation}, {loss}): δ^(L) = ∂J_i/∂a^(L) .* g'(z^(L))"
