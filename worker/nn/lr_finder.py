"""Smith's learning-rate range test: train briefly while the rate grows, watch the loss.

``lr_range_test(net, X, Y, config)`` trains a copy of ``net`` (the caller's network is
never touched) with the optimizer, batch size, L2 and seed of ``config`` for at most
``steps`` mini-batch steps, the learning rate growing exponentially from ``min_lr`` to
``max_lr``: step i uses min_lr · (max_lr/min_lr)^(i/(steps-1)). Each step records the
mini-batch loss (the data part of J, at the weights before the step) and its smoothed
value, an exponential moving average with bias correction (as Adam corrects its moments):

    avg_i = β·avg_{i-1} + (1 − β)·loss_i,   smoothed_i = avg_i / (1 − β^(i+1))

The test stops early, without raising, when the smoothed loss exceeds ``stop_factor``
times its minimum (the rate is now far too high) or a loss or weight is not finite.

The suggestion (Smith 2017, section 3.3; the fast.ai finder's "minimum / 10"): the rate
at the minimum of the smoothed loss is where the steps start doing harm, so the suggested
rate is that rate divided by ``MIN_LOSS_DIVISOR`` (never below ``min_lr``). It lies on the
steadily falling part of the curve with a margin for the longer training to come, and
unlike the steepest-slope point it does not jump with the mini-batch noise of the flat
start (docs/diagnostics.md compares the two). Give the finder the examples a job trains
on and never its validation split, e.g. ``trainer.X_train`` and ``trainer.Y_train``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._types import Array
from .config import TrainingConfig
from .errors import SpecError
from .network import Network
from .optimizers import make_optimizer

MAX_STEPS = 1000
"""The most steps a range test may take (the API may allow fewer)."""
DEFAULT_STEPS = 100
SMOOTHING = 0.9
"""β of the loss's moving average: about the last 10 steps count."""
STOP_FACTOR = 4.0
"""Stop once the smoothed loss exceeds this multiple of its minimum."""
MIN_LOSS_DIVISOR = 10.0
"""The suggested rate is the rate at the smoothed loss's minimum divided by this."""


def lr_range_test(
    net: Network,
    X: Array,
    Y: Array,
    config: TrainingConfig,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = DEFAULT_STEPS,
    smoothing: float = SMOOTHING,
    stop_factor: float = STOP_FACTOR,
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the range test; returns a JSON-ready dict.

    Parameters
    ----------
    net : Network, copied (its weights are the starting point; it is not modified)
    X : ndarray of shape (n_samples, n_in), the training examples
    Y : ndarray of shape (n_samples, K), targets as the trainer takes them
    config : TrainingConfig; its optimizer, batch size, l2 and seed are used, its
        learning rate, schedule, epochs and validation split are not
    min_lr, max_lr : the range, 0 < min_lr < max_lr
    steps : mini-batch steps, 2 ≤ steps ≤ MAX_STEPS
    tick : called before each step; it may raise to stop the test (the API's request
        deadline, ``service.deadlines``)

    Returns
    -------
    dict
        ``points``: ``[{"learning_rate", "loss" (smoothed), "raw_loss"}]`` one per step
        taken; ``suggested_learning_rate`` (None when no finite loss was seen);
        ``min_loss`` ``{"learning_rate", "loss"}``; ``rule`` (the suggestion's, in words);
        ``stop_reason`` ``"steps"`` (the range was exhausted: if the loss was still
        falling, ``max_lr`` was too small), ``"diverged"`` or ``"non_finite"``.
    """
    _check(min_lr, max_lr, steps, smoothing, stop_factor)
    trial = net.copy()
    X = trial.as_input(X)
    Y = trial.as_target(Y, X.shape[0])
    batches = _Batches(X, Y, config.effective_batch_size(X.shape[0]), config.seed)
    optimizer = make_optimizer(
        config.optimizer,
        learning_rate=min_lr,
        momentum=config.momentum,
        beta1=config.beta1,
        beta2=config.beta2,
        epsilon=config.epsilon,
    )
    params, grads = [trial.flat_parameters], [trial.flat_gradients]
    growth = (max_lr / min_lr) ** (1.0 / (steps - 1))
    points: list[dict[str, float]] = []
    average, best, stop_reason = 0.0, math.inf, "steps"
    with np.errstate(all="ignore"):  # a blow-up ends the test; it is not an error
        for step in range(steps):
            if tick is not None:
                tick()
            rate = min_lr * growth**step
            XT, YT = batches.next()
            loss = trial.loss_and_gradients_cols(XT, YT, config.l2)
            if not math.isfinite(loss):
                stop_reason = "non_finite"
                break
            average = smoothing * average + (1 - smoothing) * loss
            smoothed = average / (1 - smoothing ** (step + 1))
            points.append({"learning_rate": rate, "loss": smoothed, "raw_loss": loss})
            best = min(best, smoothed)
            if smoothed > stop_factor * best:
                stop_reason = "diverged"
                break
            optimizer.learning_rate = rate
            optimizer.step(params, grads)
            if not math.isfinite(float(trial.flat_parameters.sum())):
                stop_reason = "non_finite"
                break
    return _result(points, stop_reason, min_lr, max_lr, steps, smoothing)


def _result(
    points: list[dict[str, float]],
    stop_reason: str,
    min_lr: float,
    max_lr: float,
    steps: int,
    smoothing: float,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "points": points,
        "suggested_learning_rate": None,
        "min_loss": None,
        "rule": f"learning rate at the smoothed loss's minimum / {MIN_LOSS_DIVISOR:g}",
        "stop_reason": stop_reason,
        "steps_run": len(points),
        "min_lr": min_lr,
        "max_lr": max_lr,
        "steps": steps,
        "smoothing": smoothing,
    }
    if not points:
        return result
    lowest = min(range(len(points)), key=lambda i: points[i]["loss"])
    at_min = points[lowest]
    result["min_loss"] = {"learning_rate": at_min["learning_rate"], "loss": at_min["loss"]}
    result["suggested_learning_rate"] = max(at_min["learning_rate"] / MIN_LOSS_DIVISOR, min_lr)
    return result


class _Batches:
    """Mini-batches in the trainer's layout, reshuffled from a seeded generator each pass."""

    def __init__(self, X: Array, Y: Array, size: int, seed: int) -> None:
        self.X, self.YT, self.size = X, np.ascontiguousarray(Y.T), size
        self.rng = np.random.default_rng(seed)
        self.full = size >= X.shape[0]
        self.XT = np.ascontiguousarray(X.T) if self.full else None
        self.order = np.arange(0)
        self.position = 0

    def next(self) -> tuple[Array, Array]:
        if self.XT is not None:
            return self.XT, self.YT
        if self.position >= self.order.shape[0]:
            self.order, self.position = self.rng.permutation(self.X.shape[0]), 0
        index = self.order[self.position : self.position + self.size]
        self.position += self.size
        return self.X[index].T, np.ascontiguousarray(self.YT[:, index])


def _check(min_lr: float, max_lr: float, steps: int, smoothing: float, stop_factor: float) -> None:
    if not (0 < min_lr < max_lr and math.isfinite(max_lr)):
        raise SpecError(f"need 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if not 2 <= steps <= MAX_STEPS:
        raise SpecError(f"steps must be between 2 and {MAX_STEPS}, got {steps}")
    if not 0 <= smoothing < 1 or not stop_factor > 1:
        raise SpecError("smoothing must be in [0, 1) and stop_factor > 1")
