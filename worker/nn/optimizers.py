"""Optimizers: small objects with one verb, ``step(params, grads)``, and per-parameter state.

``params`` and ``grads`` are equally long lists of arrays (the trainer passes the
network's ``[flat_parameters]`` and ``[flat_gradients]``); ``step`` updates ``params`` in
place and may use ``grads`` as scratch afterwards (the next backward pass overwrites them
anyway). ``learning_rate`` is an attribute the schedule sets between epochs. ``state_dict()`` /
``load_state_dict()`` save and restore everything a bit-for-bit resume needs.

Updates, with η the learning rate and g the gradient D:

- ``gd``/``sgd``: p ← p - η g
- ``momentum``: v ← μ v - η g;  p ← p + v
- ``nesterov`` (Sutskever's form on the current gradient): v ← μ v - η g;  p ← p + μ v - η g
- ``adam``: m ← β1 m + (1-β1) g;  v ← β2 v + (1-β2) g²;  t ← t + 1;
  p ← p - η m̂ / (√v̂ + ε) with m̂ = m/(1-β1^t), v̂ = v/(1-β2^t)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._types import Array


class Optimizer:
    name = ""

    def __init__(self, learning_rate: float = 0.01, **_: Any) -> None:
        self.learning_rate = float(learning_rate)

    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        """p ← p - η g for every parameter (plain gradient descent)."""
        lr = self.learning_rate
        for p, g in zip(params, grads, strict=True):
            g *= lr
            p -= g

    def state_dict(self) -> dict[str, Any]:
        """Scalars and per-parameter arrays (as lists under their own keys)."""
        return {"learning_rate": self.learning_rate}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learning_rate = float(state["learning_rate"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class GradientDescent(Optimizer):
    name = "gd"


class SGD(Optimizer):
    """Same update as gd; the trainer feeds it shuffled mini-batches."""

    name = "sgd"


def _zeros_like_all(arrays: Sequence[Array]) -> list[Array]:
    return [np.zeros_like(a) for a in arrays]


class Momentum(Optimizer):
    name = "momentum"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.9, **_: Any) -> None:
        super().__init__(learning_rate)
        self.momentum = float(momentum)
        self.velocity: list[Array] | None = None

    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        if self.velocity is None:
            self.velocity = _zeros_like_all(params)
        lr, mu = self.learning_rate, self.momentum
        for p, g, v in zip(params, grads, self.velocity, strict=True):
            v *= mu
            g *= lr
            v -= g
            p += v

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "momentum": self.momentum, "velocity": self.velocity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.momentum = float(state["momentum"])
        self.velocity = _copies(state.get("velocity"))


class Nesterov(Momentum):
    name = "nesterov"

    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        if self.velocity is None:
            self.velocity = _zeros_like_all(params)
        lr, mu = self.learning_rate, self.momentum
        for p, g, v in zip(params, grads, self.velocity, strict=True):
            g *= lr
            v *= mu
            v -= g  # v = μ v - η g
            p -= g
            g[...] = v
            g *= mu
            p += g  # p += μ v - η g


class Adam(Optimizer):
    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.01,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        **_: Any,
    ) -> None:
        super().__init__(learning_rate)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)
        self.t = 0
        self.m: list[Array] | None = None
        self.v: list[Array] | None = None
        self._scratch: list[Array] | None = None

    def step(self, params: Sequence[Array], grads: Sequence[Array]) -> None:
        if self.m is None or self.v is None:
            self.m = _zeros_like_all(params)
            self.v = _zeros_like_all(params)
        if self._scratch is None:
            self._scratch = _zeros_like_all(params)
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Bias corrections folded into two scalars: p -= η m̂/(√v̂ + ε).
        step_size = self.learning_rate / (1 - b1**self.t)
        root_correction = 1 / math.sqrt(1 - b2**self.t)
        for p, g, m, v, s in zip(params, grads, self.m, self.v, self._scratch, strict=True):
            m *= b1
            np.multiply(g, 1 - b1, out=s)
            m += s
            v *= b2
            np.multiply(g, g, out=s)
            s *= 1 - b2
            v += s
            np.sqrt(v, out=s)
            s *= root_correction  # √v̂
            s += self.epsilon
            np.divide(m, s, out=s)
            s *= step_size
            p -= s

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "beta1": self.beta1,
            "beta2": self.beta2,
            "epsilon": self.epsilon,
            "t": self.t,
            "m": self.m,
            "v": self.v,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.beta1 = float(state["beta1"])
        self.beta2 = float(state["beta2"])
        self.epsilon = float(state["epsilon"])
        self.t = int(state["t"])
        self.m = _copies(state.get("m"))
        self.v = _copies(state.get("v"))


def _copies(arrays: Sequence[Array] | None) -> list[Array] | None:
    return None if arrays is None else [np.array(a, copy=True) for a in arrays]


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (GradientDescent, SGD, Momentum, Nesterov, Adam)
}
"""Name → optimizer class; construct with the spec's keyword arguments."""


def make_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """``OPTIMIZERS[name](**kwargs)``; unknown keyword arguments are ignored."""
    return OPTIMIZERS[name](**kwargs)
