"""Activation functions g and their derivatives, in one registry.

Every activation offers the public, allocating verbs

- ``forward(z) -> a``
- ``derivative(z, a) -> g'(z)`` (elementwise activations only; softmax raises)
- ``backward(da, z, a) -> dz`` (general: includes softmax's Jacobian-vector product)

and two in-place verbs the training hot path uses on preallocated buffers:

- ``forward_inplace(z, axis)`` overwrites the pre-activation buffer with a = g(z);
- ``backward_inplace(delta, a, scratch, axis)`` multiplies ``delta`` (holding dJ/da) by
  g'(z), computed from the output ``a`` alone (sigmoid' = a(1 - a), tanh' = 1 - a², the
  ReLU mask from a > 0), so z never has to be kept. The elementwise activations other
  than identity leave g'(z) itself in ``scratch``; the trainer's activation statistics
  read it from there instead of computing it again.

Public arrays are ``(n_samples, n_units)``; the in-place verbs take ``axis``, the units
axis (1 there, 0 in the network's column-per-example buffers), which only softmax uses.
Results keep the input dtype (Python scalars are "weak" under NEP 50, so float32 stays
float32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ._types import Array

LEAKY_RELU_SLOPE = 0.01


class Activation(ABC):
    """Base class: subclasses implement the elementwise pieces."""

    name = ""
    elementwise = True

    def forward(self, z: Array) -> Array:
        """a = g(z); z of shape (n_samples, n_units)."""
        with np.errstate(over="ignore"):
            return self.forward_inplace(_float_copy(z))

    @abstractmethod
    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        """Overwrite z with g(z) and return it."""

    def derivative(self, z: Array | None, a: Array | None = None) -> Array:
        """g'(z), elementwise. Pass ``a = g(z)`` when known; it is computed otherwise."""
        if a is None:
            if z is None:
                raise ValueError("derivative needs z or a")
            a = self.forward(z)
        out = np.ones_like(a)
        self.backward_inplace(out, a, np.empty_like(a))
        return out

    def backward(self, da: Array, z: Array | None, a: Array | None = None) -> Array:
        """dz = dJ/dz from da = dJ/da; shapes (n_samples, n_units)."""
        if a is None:
            if z is None:
                raise ValueError("backward needs z or a")
            a = self.forward(z)
        dz = np.array(da, dtype=a.dtype, copy=True)
        self.backward_inplace(dz, a, np.empty_like(a))
        return dz

    @abstractmethod
    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        """Multiply delta (holding dJ/da) in place by g'(z), using a and a scratch buffer."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sigmoid(Activation):
    name = "sigmoid"

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        # 1 / (1 + exp(-z)); exp overflows to inf for z << 0, which gives the right 0.
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)
        return z

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        np.multiply(a, a, out=scratch)
        np.subtract(a, scratch, out=scratch)  # a - a² = a(1 - a)
        delta *= scratch


class Tanh(Activation):
    name = "tanh"

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        return np.tanh(z, out=z)

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        np.multiply(a, a, out=scratch)
        np.subtract(1, scratch, out=scratch)  # 1 - a²
        delta *= scratch


class ReLU(Activation):
    name = "relu"

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        return np.maximum(z, 0, out=z)

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        # a >= 0, so sign(a) is exactly the 0/1 mask of g'(z) (g'(0) taken as 0).
        np.sign(a, out=scratch)
        delta *= scratch


class LeakyReLU(Activation):
    name = "leaky_relu"
    slope = LEAKY_RELU_SLOPE

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        # max(z, slope·z) is z for z > 0 and slope·z otherwise, because 0 < slope < 1.
        scaled = np.multiply(z, self.slope)
        return np.maximum(z, scaled, out=z)

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        # sign(a) = sign(z); g' = 1 where a > 0, slope elsewhere.
        np.sign(a, out=scratch)
        np.maximum(scratch, 0, out=scratch)
        scratch *= 1 - self.slope
        scratch += self.slope
        delta *= scratch


class Identity(Activation):
    name = "identity"

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        return z

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        return None


class Softmax(Activation):
    """Row-wise softmax; only meaningful on the output layer."""

    name = "softmax"
    elementwise = False

    def forward_inplace(self, z: Array, axis: int = 1) -> Array:
        z -= z.max(axis=axis, keepdims=True)  # shift for stability; softmax is shift-invariant
        np.exp(z, out=z)
        z /= z.sum(axis=axis, keepdims=True)
        return z

    def derivative(self, z: Array | None, a: Array | None = None) -> Array:
        raise TypeError("softmax has no elementwise derivative; use backward(da, z, a)")

    def backward_inplace(self, delta: Array, a: Array, scratch: Array, axis: int = 1) -> None:
        # Jacobian-vector product: dz_i = a_i (da_i - Σ_j da_j a_j), per example.
        np.multiply(delta, a, out=scratch)
        delta -= scratch.sum(axis=axis, keepdims=True)
        delta *= a


ACTIVATIONS: dict[str, Activation] = {
    act.name: act for act in (Sigmoid(), Tanh(), ReLU(), LeakyReLU(), Identity(), Softmax())
}
"""Name → activation; the names are the API's vocabulary."""


def _float_copy(z: Array) -> Array:
    """A copy of z as floats (float32 stays float32; integers become float64)."""
    z = np.asarray(z)
    return np.array(z, dtype=np.result_type(z.dtype, np.float32), copy=True)


HIDDEN_ACTIVATIONS = frozenset(name for name, act in ACTIVATIONS.items() if act.elementwise)
"""Activations allowed on hidden layers (softmax is output-only)."""
