"""What the trainer records about an epoch's last mini-batch, when asked to.

Everything here only reads the buffers the last backward pass left behind and the
parameters before and after the optimizer step: it draws no random numbers and writes
nothing the training reads, so a run with recording on has the same bits as one without.

Gradients (``record_grad_norms``), per weight layer k = 1..n_layers (Θ^(k) in Ng's
numbering, weights and bias together):

- ``grad_norms[k-1]`` = ‖D^(k)‖, the Frobenius norm of the gradient of that batch;
- ``update_ratios[k-1]`` = ‖ΔΘ^(k)‖ / ‖Θ^(k)‖ of the step taken with it (None if ‖Θ^(k)‖ = 0).

Activations (``record_activations``), per layer k = 1..n_layers, the units that Θ^(k)
feeds (a^(k+1) in Ng's numbering; k = n_layers is the output), over the batch's m
examples: ``{"layer": k, "dead_fraction", "saturated_fraction", "mean", "std"}``.

- ``mean``, ``std``: of all m·s values a of the layer (population std).
- ``dead_fraction`` (relu, leaky_relu; None for the others): the fraction of units with
  z ≤ 0 on every example of the batch — a = 0 throughout for relu, so no gradient flows
  through them (leaky units keep a slope of 0.01).
- ``saturated_fraction`` (hidden sigmoid and tanh layers; None for the others and for
  the output layer, whose units near 0 or 1 are the confident predictions a classifier
  is trained toward): the fraction of units saturated on more than ``SATURATED_SHARE``
  (half) of the batch's examples. A unit is saturated on an example when |u| >
  ``SATURATION_BOUND`` = 0.99, with u = tanh(z) for tanh and u = 2·sigmoid(z) − 1 =
  tanh(z/2) for sigmoid: |tanh| > 0.99, sigmoid outside [0.005, 0.995]. Then g'(z) =
  (1 − u²)·max g' is below 2% of its peak, so the unit passes almost no gradient back.
  Counting units (not (example, unit) pairs) matches ``dead_fraction``; "most examples"
  (not every one) catches the step-like units of unscaled inputs, which stay linear only
  for the few examples near their boundary.

For hidden layers g'(z) is what the backward pass left in the network's scratch buffers
(see ``Network.last_pass_cols``), so no layer needs a pass of its own beyond Σa, Σa² and
one comparison; an output relu is judged from a itself.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._types import Array
from .activations import LEAKY_RELU_SLOPE
from .network import Network
from .optimizers import Optimizer

SATURATION_BOUND = 0.99
"""An example saturates a sigmoid/tanh unit when |u| > this (u = tanh z, or 2·sigmoid z − 1)."""
SATURATED_SHARE = 0.5
"""A unit counts as saturated when more than this share of the batch saturates it."""

_MAX_DERIVATIVE = {"sigmoid": 0.25, "tanh": 1.0}
_RECTIFIERS = frozenset({"relu", "leaky_relu"})


class Recorded(NamedTuple):
    """What one epoch's last mini-batch recorded (None where not asked for)."""

    grad_norms: list[float] | None
    update_ratios: list[float | None] | None
    activation_stats: list[dict[str, Any]] | None


class LastBatchRecorder:
    """Takes the optimizer step of an epoch's last mini-batch, recording around it.

    Parameters
    ----------
    net : Network, trained in place
    optimizer : Optimizer, stepping ``params`` with ``grads``
    params, grads : the optimizer's lists (the network's flat vectors)
    grad_norms, activations : what to record
    """

    def __init__(
        self,
        net: Network,
        optimizer: Optimizer,
        params: list[Array],
        grads: list[Array],
        *,
        grad_norms: bool,
        activations: bool,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.params = params
        self.grads = grads
        self.record_grad_norms = grad_norms
        self.record_activations = activations
        # Per batch size: ones as long as the widest layer (sums by BLAS) and a mask.
        self._buffers: dict[int, tuple[Array, Array]] = {}

    def step(self, m: int) -> Recorded:
        """Record, then step, after a ``loss_and_gradients_cols`` pass over m examples."""
        stats = self.activation_stats(m) if self.record_activations else None
        if not self.record_grad_norms:
            self.optimizer.step(self.params, self.grads)
            return Recorded(None, None, stats)
        norms, before = grad_norms(self.net), self.net.parameters_copy()
        self.optimizer.step(self.params, self.grads)
        return Recorded(norms, update_ratios(self.net, before), stats)

    def activation_stats(self, m: int) -> list[dict[str, Any]]:
        """Per-layer statistics of the last pass over m examples (see the module docstring)."""
        net = self.net
        acts, derivatives = net.last_pass_cols(m)
        buffers = self._buffers.get(m)
        if buffers is None:
            widest = max(net.layer_sizes[1:])
            buffers = (np.ones(widest * m, dtype=net.dtype), np.empty(widest * m, dtype=bool))
            self._buffers[m] = buffers
        ones, flat = buffers
        stats = []
        for index, (name, a) in enumerate(zip(net.activations, acts, strict=True)):
            dead = saturated = None
            if index < len(derivatives):  # hidden: g'(z) is in the backward pass's buffer
                mask = flat[: a.size].reshape(a.shape)
                if name in _MAX_DERIVATIVE:
                    saturated = _saturated(name, derivatives[index], mask)
                elif name in _RECTIFIERS:
                    dead = _dead(name, derivatives[index], ones[:m])
            elif name in _RECTIFIERS:  # an output relu: a ≤ 0 exactly where z ≤ 0
                dead = sum(1 for top in a.max(axis=1).tolist() if top <= 0) / a.shape[0]
            stats.append(_stats(index + 1, a, ones[: a.size], dead, saturated))
        return stats


def _saturated(name: str, g_prime: Array, mask: Array) -> float:
    """The share of units (rows of g'(z)) saturated on more than SATURATED_SHARE of examples."""
    units, m = g_prime.shape
    np.less(g_prime, (1.0 - SATURATION_BOUND**2) * _MAX_DERIVATIVE[name], out=mask)
    most = SATURATED_SHARE * m
    if np.count_nonzero(mask) <= most:  # too few saturated pairs for even one unit
        return 0.0
    # Row counts of the 0/1 bytes: cheaper than count_nonzero along an axis.
    counts = mask.view(np.uint8).sum(axis=1, dtype=np.uint32).tolist()
    return sum(1 for count in counts if count > most) / units


def _dead(name: str, g_prime: Array, ones: Array) -> float:
    """The share of units never active: g' is 1 where z > 0, else 0 (relu) or the slope."""
    units, m = g_prime.shape
    slope = 0.0 if name == "relu" else LEAKY_RELU_SLOPE
    bound = slope * m + 0.5 * (1.0 - slope)  # a row sum of slope·m, half an example of slack
    return sum(1 for total in (g_prime @ ones).tolist() if total < bound) / units


def _stats(
    layer: int, a: Array, ones: Array, dead: float | None, saturated: float | None
) -> dict[str, Any]:
    """Σa and Σa² by two BLAS dot products (``ones`` is as long as a), then the dict."""
    count = a.size
    mean = float(np.vdot(a, ones)) / count
    variance = max(float(np.vdot(a, a)) / count - mean * mean, 0.0)
    return {
        "layer": layer,
        "dead_fraction": dead,
        "saturated_fraction": saturated,
        "mean": mean,
        "std": math.sqrt(variance),
    }


def grad_norms(net: Network) -> list[float]:
    """‖D^(k)‖ per weight layer (weights and bias), from the network's gradient buffers."""
    return [
        math.sqrt(float(np.vdot(dW, dW)) + float(np.vdot(db, db)))
        for dW, db in zip(net.grad_weights, net.grad_biases, strict=True)
    ]


def update_ratios(net: Network, before: list[Array]) -> list[float | None]:
    """‖ΔΘ^(k)‖/‖Θ^(k)‖ per weight layer, from ``before`` = [W1, b1, W2, b2, ...] copies."""
    ratios: list[float | None] = []
    for layer in range(net.n_layers):
        old_W, old_b = before[2 * layer], before[2 * layer + 1]
        new_W, new_b = net.weights[layer], net.biases[layer]
        size = math.sqrt(float(np.vdot(old_W, old_W)) + float(np.vdot(old_b, old_b)))
        change = math.sqrt(
            float(np.sum((new_W - old_W) ** 2)) + float(np.sum((new_b - old_b) ** 2))
        )
        ratios.append(change / size if size > 0 else None)
    return ratios
