"""A fully connected network: forward pass, cost J and its gradients by backpropagation.

Row-per-example layout (the numerics contract in shared/DESIGN.md): for layer l with
W^(l) of shape (n_in, n_out) and b^(l) of shape (n_out,),

    z^(l+1) = a^(l) W^(l) + b^(l),   a^(l+1) = g(z^(l+1))
    δ^(L)   = a^(L) - y                       (matched output/loss pairs, fused)
            = m·dJ/da^(L) .* g'(z^(L))        (any other pair)
    δ^(l)   = (δ^(l+1) W^(l)ᵀ) .* g'(z^(l))
    D^(l)   = Δ^(l)/m + (λ/m) W^(l),   Δ^(l) = a^(l)ᵀ δ^(l+1)  (sum over examples)

The hot path (``loss_and_gradients_cols``) holds one column per example, the transpose
of the above (Ng's own layout), in buffers preallocated per batch size and reused every
call: GEMMs write straight into them (``np.matmul(..., out=)``), the bias is added in
place, activations overwrite their pre-activation buffer, and derivatives are taken from
the outputs a. The 1/m of D is folded into δ^(L) once, so every δ below it and every GEMM
already carries it. The public methods take and return rows per example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._types import Array
from .activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, Activation
from .errors import SpecError
from .initializers import INITIALIZERS, theta_from_wb, wb_from_theta
from .losses import LOSSES, MATCHED_PAIRS, Loss

_MAX_WORKSPACES = 4  # batch sizes kept: full, mini-batch, last partial batch, validation


class _Workspace:
    """Per-batch-size buffers: a^(l), δ^(l) and a scratch for each non-input layer."""

    __slots__ = ("acts", "deltas", "scratch")

    def __init__(self, m: int, sizes: Sequence[int], dtype: np.dtype[Any]) -> None:
        # Column per example: (n_units, m).
        self.acts = [np.empty((n, m), dtype=dtype) for n in sizes[1:]]
        self.deltas = [np.empty((n, m), dtype=dtype) for n in sizes[1:]]
        self.scratch = [np.empty((n, m), dtype=dtype) for n in sizes[1:]]


class Network:
    """A feed-forward network of dense layers.

    Parameters
    ----------
    layer_sizes : list of int, [n_in, h1, ..., K]
    activations : list of str, one name per non-input layer (softmax only on the output)
    loss : str, a key of ``LOSSES``
    weights : list of ndarray, W^(l) of shape (layer_sizes[l], layer_sizes[l+1])
    biases : list of ndarray, b^(l) of shape (layer_sizes[l+1],)
    dtype : "float64" or "float32"; all parameters and computations use it.

    ``weights`` and ``biases`` are copied into C-contiguous views of one flat parameter
    vector ``flat_parameters`` (and D^(l) into views of ``flat_gradients``); optimizers
    update them in place, so keep modifying them in place rather than rebinding them.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activations: Sequence[str],
        loss: str,
        weights: Sequence[Array],
        biases: Sequence[Array],
        dtype: str | np.dtype[Any] = "float64",
    ) -> None:
        self.layer_sizes = [int(n) for n in layer_sizes]
        self.activations = list(activations)
        self.loss = loss
        self.dtype = _float_dtype(dtype)
        _check_architecture(self.layer_sizes, self.activations, loss)
        if len(weights) != len(self.activations) or len(biases) != len(self.activations):
            raise SpecError(f"expected {len(self.activations)} weight matrices and bias vectors")
        arrays: list[Array] = []
        for index, (W, b) in enumerate(zip(weights, biases, strict=True)):
            shape = (self.layer_sizes[index], self.layer_sizes[index + 1])
            W_arr = np.asarray(W, dtype=self.dtype)
            b_arr = np.asarray(b, dtype=self.dtype).reshape(-1)
            if W_arr.shape != shape or b_arr.shape != (shape[1],):
                raise SpecError(
                    f"layer {index + 1}: W must be {shape} and b ({shape[1]},), "
                    f"got {W_arr.shape} and {b_arr.shape}"
                )
            arrays += [W_arr, b_arr]
        # All parameters live in one flat vector (and all gradients in another), so an
        # optimizer step or a finiteness check is a handful of numpy calls, not a few per
        # layer. weights/biases are C-contiguous views into it: modify them in place.
        self.flat_parameters, params = _flat_views([a.shape for a in arrays], self.dtype)
        for view, source in zip(params, arrays, strict=True):
            view[...] = source
        self.flat_gradients, grads = _flat_views([a.shape for a in arrays], self.dtype)
        self.weights: list[Array] = params[0::2]
        self.biases: list[Array] = params[1::2]
        self.grad_weights: list[Array] = grads[0::2]
        self.grad_biases: list[Array] = grads[1::2]
        self._weight_scratch = [np.empty_like(W) for W in self.weights]
        self._g: list[Activation] = [ACTIVATIONS[name] for name in self.activations]
        self._loss: Loss = LOSSES[loss]
        self._fused = (self.activations[-1], loss) in MATCHED_PAIRS
        self._workspaces: dict[int, _Workspace] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def initialized(
        cls,
        layer_sizes: Sequence[int],
        activations: Sequence[str],
        loss: str,
        scheme: str = "glorot",
        rng: np.random.Generator | None = None,
        dtype: str | np.dtype[Any] = "float64",
    ) -> Network:
        """A network with weights drawn by an ``INITIALIZERS`` scheme from ``rng``."""
        if scheme not in INITIALIZERS:
            raise SpecError(f"unknown init scheme {scheme!r}; choose from {sorted(INITIALIZERS)}")
        if rng is None:
            if scheme != "zeros":
                raise SpecError(f"init scheme {scheme!r} needs rng=np.random.default_rng(seed)")
            rng = np.random.default_rng(0)
        sizes = [int(n) for n in layer_sizes]
        pairs = [INITIALIZERS[scheme](sizes[i], sizes[i + 1], rng) for i in range(len(sizes) - 1)]
        return cls(sizes, activations, loss, [W for W, _ in pairs], [b for _, b in pairs], dtype)

    def copy(self) -> Network:
        """An independent network with the same architecture, dtype and weights."""
        return Network(
            self.layer_sizes, self.activations, self.loss, self.weights, self.biases, self.dtype
        )

    # ------------------------------------------------------------------ parameters

    @property
    def n_layers(self) -> int:
        """Number of weight layers (L - 1 in Ng's counting)."""
        return len(self.weights)

    def parameters(self) -> list[Array]:
        """[W1, b1, W2, b2, ...]: the live arrays an optimizer updates in place."""
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def parameters_copy(self) -> list[Array]:
        """Copies of [W1, b1, W2, b2, ...]."""
        return [p.copy() for p in self.parameters()]

    def wb(self) -> list[dict[str, Array]]:
        """Copies of the weights as ``[{"W": (n_in, n_out), "b": (n_out,)}, ...]``."""
        return [
            {"W": W.copy(), "b": b.copy()} for W, b in zip(self.weights, self.biases, strict=True)
        ]

    def theta(self) -> list[Array]:
        """The weights in Ng's layout: Θ^(l) of shape (n_out, n_in + 1), bias in column 0."""
        return [theta_from_wb(W, b) for W, b in zip(self.weights, self.biases, strict=True)]

    def set_wb(self, weights: Sequence[Array], biases: Sequence[Array]) -> None:
        """Copy new values into the existing parameter arrays (shapes must match)."""
        for target, source in zip(
            self.weights + self.biases, list(weights) + list(biases), strict=True
        ):
            source_arr = np.asarray(source)
            if source_arr.shape != target.shape:
                raise SpecError(f"shape {source_arr.shape} does not match {target.shape}")
            np.copyto(target, source_arr, casting="unsafe")

    def set_theta(self, thetas: Sequence[Array]) -> None:
        """Copy weights given in Ng's Θ layout into the network."""
        pairs = [wb_from_theta(t) for t in thetas]
        self.set_wb([W for W, _ in pairs], [b for _, b in pairs])

    # ------------------------------------------------------------------ public numerics

    def forward(self, X: Array) -> Array:
        """Network output a^(L) of shape (n_samples, K) for X of shape (n_samples, n_in)."""
        a = self.as_input(X)
        with np.errstate(over="ignore", under="ignore"):
            for W, b, g in zip(self.weights, self.biases, self._g, strict=True):
                z = a @ W
                z += b
                a = g.forward_inplace(z)
        return a

    def forward_all(self, X: Array) -> tuple[list[Array], list[Array]]:
        """Every layer's values: (zs, activations).

        ``activations[0]`` is X and ``activations[l]`` is a^(l+1) of shape (n_samples,
        layer_sizes[l]); ``zs[l]`` is the pre-activation of ``activations[l + 1]``.
        """
        a = self.as_input(X)
        zs: list[Array] = []
        acts: list[Array] = [a]
        with np.errstate(over="ignore", under="ignore"):
            for W, b, g in zip(self.weights, self.biases, self._g, strict=True):
                z = a @ W
                z += b
                zs.append(z)
                a = g.forward_inplace(z.copy())
                acts.append(a)
        return zs, acts

    def regularization(self, l2: float, m: int) -> float:
        """The L2 part of J: (λ/(2m)) Σ_l Σ W^(l)², biases excluded."""
        if not l2:
            return 0.0
        total = sum(float(np.vdot(W, W)) for W in self.weights)
        return l2 / (2 * m) * total

    def cost(self, X: Array, Y: Array, l2: float = 0.0) -> float:
        """J = data part + (λ/(2m)) Σ W²; X (m, n_in), Y (m, K)."""
        X = self.as_input(X)
        Y = self.as_target(Y, X.shape[0])
        with np.errstate(over="ignore", under="ignore"):
            _, data = self.output_and_loss_cols(X.T, np.ascontiguousarray(Y.T))
        return data + self.regularization(l2, X.shape[0])

    def gradients(
        self, X: Array, Y: Array, l2: float = 0.0
    ) -> tuple[float, list[Array], list[Array]]:
        """(J, [D^(l) for W], [D^(l) for b]) with dW = Δ/m + (λ/m)W and db = Δ_bias/m.

        The returned arrays are fresh copies, shaped like ``weights`` and ``biases``.
        """
        X = self.as_input(X)
        Y = self.as_target(Y, X.shape[0])
        with np.errstate(over="ignore", under="ignore"):
            cost = self.loss_and_gradients(X, Y, l2) + self.regularization(l2, X.shape[0])
        return cost, [d.copy() for d in self.grad_weights], [d.copy() for d in self.grad_biases]

    # ------------------------------------------------------------------ hot path

    def loss_and_gradients(self, X: Array, Y: Array, l2: float = 0.0) -> float:
        """The data part of J (no L2 term) at the current weights, for X (m, n_in), Y (m, K).

        D^(l) (with the L2 term) is left in ``grad_weights``/``grad_biases``.
        X and Y must already have the network's dtype (the caller converts once, not per
        step). Floating-point warnings are the caller's business: the trainer checks
        finiteness itself.
        """
        return self.loss_and_gradients_cols(X.T, np.ascontiguousarray(Y.T), l2)

    def loss_and_gradients_cols(self, XT: Array, YT: Array, l2: float = 0.0) -> float:
        """``loss_and_gradients`` on column-per-example data: XT (n_in, m), YT (K, m).

        XT may be a transposed view (``X.T``); YT must be C-contiguous.
        """
        ws = self._workspace(XT.shape[1])
        output = self._forward_cols(XT, ws)
        data_loss = self._loss.total(output, YT, ws.scratch[-1]) / XT.shape[1]
        self._backward_cols(XT, YT, ws, l2)
        return data_loss

    def output_and_loss_cols(self, XT: Array, YT: Array) -> tuple[Array, float]:
        """(output (K, m), data part of J) for column-per-example XT (n_in, m), YT (K, m).

        The output is a reused buffer, valid until the next pass over m examples.
        """
        ws = self._workspace(XT.shape[1])
        output = self._forward_cols(XT, ws)
        return output, self._loss.total(output, YT, ws.scratch[-1]) / XT.shape[1]

    def last_output_cols(self, m: int) -> Array:
        """Output (K, m) of the last pass over m examples (a reused buffer)."""
        return self._workspaces[m].acts[-1]

    def last_pass_cols(self, m: int) -> tuple[list[Array], list[Array]]:
        """Buffers of the last ``loss_and_gradients_cols`` pass over m examples.

        ``(acts, derivatives)``: ``acts[k]`` is a^(k+2) of shape (s, m) for every
        non-input layer; ``derivatives[k]`` is g'(z^(k+2)) for the hidden layers only, as
        ``backward_inplace`` left it (meaningless for identity, which leaves it alone).
        Both are reused buffers, valid until the next pass over m examples.
        """
        ws = self._workspaces[m]
        return ws.acts, ws.scratch[:-1]

    # The hot path keeps one column per example (Ng's own layout): every bias add,
    # softmax reduction and bias gradient then runs along contiguous rows of length m,
    # which matters when layers are narrow (a row-per-example (m, 8) array costs numpy a
    # loop call per example). The GEMMs take transposed views and need no copies.

    def _forward_cols(self, XT: Array, ws: _Workspace) -> Array:
        a = XT
        for W, b, g, z in zip(self.weights, self.biases, self._g, ws.acts, strict=True):
            np.matmul(W.T, a, out=z)  # z^T = W^T a^T
            z += b[:, None]
            a = g.forward_inplace(z, axis=0)
        return a

    def _backward_cols(self, XT: Array, YT: Array, ws: _Workspace, l2: float) -> None:
        m = XT.shape[1]
        last = self.n_layers - 1
        delta = ws.deltas[last]
        if self._fused:
            # Matched output/loss pair (see losses.MATCHED_PAIRS): δ^(L) = a^(L) - y.
            np.subtract(ws.acts[last], YT, out=delta)
        else:
            delta[...] = self._loss.gradient(ws.acts[last], YT)
            self._g[last].backward_inplace(delta, ws.acts[last], ws.scratch[last], axis=0)
        delta *= 1 / m  # fold D's 1/m into δ once; every GEMM below inherits it
        for layer in range(last, -1, -1):
            a_prev = XT if layer == 0 else ws.acts[layer - 1]
            delta = ws.deltas[layer]
            W = self.weights[layer]
            dW = self.grad_weights[layer]
            np.matmul(a_prev, delta.T, out=dW)  # Δ/m = a δᵀ summed over the examples
            np.sum(delta, axis=1, out=self.grad_biases[layer])
            if l2:
                scratch = self._weight_scratch[layer]
                np.multiply(W, l2 / m, out=scratch)
                dW += scratch
            if layer > 0:
                below = ws.deltas[layer - 1]
                np.matmul(W, delta, out=below)  # (δ W^T)^T = W δ^T
                self._g[layer - 1].backward_inplace(
                    below, ws.acts[layer - 1], ws.scratch[layer - 1], axis=0
                )

    def _workspace(self, m: int) -> _Workspace:
        ws = self._workspaces.get(m)
        if ws is None:
            if len(self._workspaces) >= _MAX_WORKSPACES:
                self._workspaces.pop(next(iter(self._workspaces)))
            ws = self._workspaces[m] = _Workspace(m, self.layer_sizes, self.dtype)
        return ws

    def as_input(self, X: Array) -> Array:
        """X as a C-contiguous (n_samples, n_in) array of the network's dtype."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X must have shape (n_samples, {self.layer_sizes[0]}), got {X.shape}")
        return X

    def as_target(self, Y: Array, m: int) -> Array:
        """Y as a C-contiguous (m, K) array of the network's dtype ((m,) accepted if K = 1)."""
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if Y.ndim == 1 and self.layer_sizes[-1] == 1:
            Y = Y[:, None]
        if Y.shape != (m, self.layer_sizes[-1]):
            raise ValueError(f"Y must have shape ({m}, {self.layer_sizes[-1]}), got {Y.shape}")
        return Y

    def __repr__(self) -> str:
        hidden = "→".join(
            f"{n} {name}" for n, name in zip(self.layer_sizes[1:], self.activations, strict=True)
        )
        return f"Network({self.layer_sizes[0]}→{hidden})"


_ALIGN_BYTES = 64


def _flat_views(
    shapes: Sequence[tuple[int, ...]], dtype: np.dtype[Any]
) -> tuple[Array, list[Array]]:
    """One zeroed flat vector and a C-contiguous view into it per shape.

    Every view starts on a 64-byte boundary; the gaps between them stay zero, so
    elementwise work over the whole vector (optimizer steps) leaves them zero.
    """
    step = _ALIGN_BYTES // dtype.itemsize
    offsets, total = [], 0
    sizes = [math.prod(shape) for shape in shapes]  # not np.prod: ~20x slower on tuples
    for size in sizes:
        offsets.append(total)
        total += -(-size // step) * step
    raw = np.zeros(total + step, dtype=dtype)
    start = (-raw.ctypes.data % _ALIGN_BYTES) // dtype.itemsize
    flat = raw[start : start + total]
    views = [
        flat[offset : offset + size].reshape(shape)
        for offset, size, shape in zip(offsets, sizes, shapes, strict=True)
    ]
    return flat, views


def _float_dtype(dtype: str | np.dtype[Any]) -> np.dtype[Any]:
    resolved = np.dtype(dtype)
    if resolved not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise SpecError(f"dtype must be float64 or float32, got {resolved}")
    return resolved


def _check_architecture(sizes: Sequence[int], activations: Sequence[str], loss: str) -> None:
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise SpecError(f"layer sizes must be at least [n_in, n_out], all positive; got {sizes}")
    if len(activations) != len(sizes) - 1:
        raise SpecError(f"need {len(sizes) - 1} activations for layer sizes {sizes}")
    for position, name in enumerate(activations):
        if name not in ACTIVATIONS:
            raise SpecError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
        if position < len(activations) - 1 and name not in HIDDEN_ACTIVATIONS:
            raise SpecError(f"{name!r} is allowed on the output layer only")
    if loss not in LOSSES:
        raise SpecError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
