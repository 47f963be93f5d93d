"""Losses: the data part of the cost J, and its gradient, in one registry.

For m examples and K outputs (``output`` and ``Y`` of shape (m, K)):

- ``binary_cross_entropy`` (Ng's cost over K sigmoid outputs):
  J = -(1/m) Σ_i Σ_k [y log h + (1 - y) log(1 - h)]
- ``cross_entropy`` (softmax output): J = -(1/m) Σ_i Σ_k y log p
- ``mse``: J = (1/(2m)) Σ_i Σ_k (h - y)²

``value(output, Y)`` is that data part, averaged over m. ``gradient(output, Y)`` is
m · dJ/d(output): the per-example terms, one row per example, that backprop sums.
Logarithms clip their argument to the smallest positive normal number of the dtype, so a
saturated output costs a large finite amount instead of inf.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ._types import Array


def _log_clipped(x: Array, out: Array) -> Array:
    np.maximum(x, np.finfo(x.dtype).tiny, out=out)
    return np.log(out, out=out)


class Loss(ABC):
    name = ""

    def value(self, output: Array, Y: Array) -> float:
        """Data part of J for output and Y of shape (m, K), averaged over the m rows."""
        return self.total(output, Y) / output.shape[0]

    @abstractmethod
    def total(self, output: Array, Y: Array, scratch: Array | None = None) -> float:
        """The per-example losses summed over all examples (any layout, same for both).

        ``scratch`` is an optional buffer shaped like ``output``.
        """

    @abstractmethod
    def gradient(self, output: Array, Y: Array) -> Array:
        """m · dJ/d(output), shape (m, K)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"

    def total(self, output: Array, Y: Array, scratch: Array | None = None) -> float:
        log_h = _log_clipped(output, np.empty_like(output) if scratch is None else scratch)
        log_1mh = np.subtract(1, output)
        _log_clipped(log_1mh, log_1mh)
        # y log h + (1 - y) log(1 - h) = y (log h - log(1 - h)) + log(1 - h): no (1 - y) array.
        log_h -= log_1mh
        return -float(np.vdot(Y, log_h) + log_1mh.sum())

    def gradient(self, output: Array, Y: Array) -> Array:
        # d/dh of -[y log h + (1-y) log(1-h)] = (h - y) / (h (1 - h))
        return (output - Y) / (output * (1 - output))


class CrossEntropy(Loss):
    name = "cross_entropy"

    def total(self, output: Array, Y: Array, scratch: Array | None = None) -> float:
        log_p = _log_clipped(output, np.empty_like(output) if scratch is None else scratch)
        return -float(np.vdot(Y, log_p))

    def gradient(self, output: Array, Y: Array) -> Array:
        return -Y / output


class MeanSquaredError(Loss):
    name = "mse"

    def total(self, output: Array, Y: Array, scratch: Array | None = None) -> float:
        diff = np.subtract(output, Y, out=np.empty_like(output) if scratch is None else scratch)
        return float(np.vdot(diff, diff)) / 2

    def gradient(self, output: Array, Y: Array) -> Array:
        return output - Y


LOSSES: dict[str, Loss] = {
    loss.name: loss for loss in (BinaryCrossEntropy(), CrossEntropy(), MeanSquaredError())
}
"""Name → loss; the names are the API's vocabulary."""

# Output activation and loss pairs whose output delta fuses to δ^(L) = a^(L) - y: the
# loss's gradient times the activation's Jacobian cancels to exactly a - y for
# sigmoid + binary cross-entropy, softmax + cross-entropy and identity + mse.
MATCHED_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("identity", "mse")}
)
