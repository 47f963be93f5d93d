"""The gradient check a job may ask for before training (``training.gradient_check: true``).

The runner calls ``check_before_training`` once, before the first epoch of a fresh run,
stores the report on the job (``service.job_progress.record_gradient_check``, a fenced write,
so a stale run cannot overwrite it) and fails the job with ``gradient_check_failed`` when
it did not pass.

The check is the engine's ``gradient_check`` on a float64 copy of the network, at most
``Limits.gradcheck_examples`` training rows and (sampled, seeded) at most
``Limits.gradcheck_parameters`` parameters, so it stays cheap for large jobs.

ReLU and leaky ReLU have a kink at 0 where the cost is not differentiable: a centered
difference that straddles it measures neither slope, and with ε = 1e-4 that happens
often enough on a few hundred examples to fail correct networks (measured: 4 of 10
seeds of a 2-8-8-3 ReLU net). For those networks the gate uses ε = 1e-6 and leaves out
the examples whose pre-activations lie within 1e-4 of a kink; the report says how many.
A wrong gradient does not shrink with ε, so real errors are still caught.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worker.nn import Network, gradient_check
from worker.nn.gradcheck import DEFAULT_EPSILON, DEFAULT_THRESHOLD

KINKED_ACTIVATIONS = frozenset({"relu", "leaky_relu"})
KINK_EPSILON = 1e-6
KINK_MARGIN = 1e-4


def check_before_training(
    net: Network,
    X: np.ndarray,
    Y: np.ndarray,
    l2: float,
    *,
    max_examples: int,
    max_parameters: int,
    seed: int,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Gradient-check ``net`` on the first rows of (X, Y); a JSON-ready report.

    X : ndarray of shape (n, s_1); Y : ndarray of shape (n, K), as the trainer sees them.
    The network itself is not modified (the check runs on a float64 copy).
    """
    copy = Network(net.layer_sizes, net.activations, net.loss, net.weights, net.biases, "float64")
    X = np.asarray(X[:max_examples], dtype=np.float64)
    Y = np.asarray(Y[:max_examples], dtype=np.float64)
    epsilon = DEFAULT_EPSILON
    on_kinks = 0
    if KINKED_ACTIVATIONS & set(copy.activations):
        epsilon = KINK_EPSILON
        away = _away_from_kinks(copy, X)
        if away.any():  # if every example sits on a kink, check them all and say so
            on_kinks = int((~away).sum())
            X, Y = X[away], Y[away]
    report = gradient_check(
        copy,
        X,
        Y,
        l2=l2,
        epsilon=epsilon,
        threshold=threshold,
        max_parameters=max_parameters,
        rng=np.random.default_rng(seed),
    )
    result = report.to_dict()
    result["examples_on_kinks"] = on_kinks
    return result


def _away_from_kinks(net: Network, X: np.ndarray) -> np.ndarray:
    """Mask (m,) of examples whose kinked pre-activations are all at least KINK_MARGIN from 0."""
    zs, _ = net.forward_all(X)
    away = np.ones(X.shape[0], dtype=bool)
    for z, name in zip(zs, net.activations, strict=True):
        if name in KINKED_ACTIVATIONS:
            away &= (np.abs(z) >= KINK_MARGIN).all(axis=1)
    return away


def failure_message(report: dict[str, Any]) -> str:
    """One sentence for the job's error: how far off, and where."""
    worst = report["worst"]
    row, col = worst["index"]
    where = f"Θ^({worst['layer']})[{row}, {col}]" + (" (a bias)" if col == 0 else "")
    difference = report["relative_difference"]
    shown = "not finite" if difference is None else f"{difference:.3e}"
    return (
        f"gradient check failed: relative difference {shown} is not below "
        f"{report['threshold']:g}; worst parameter {where}: numerical "
        f"{worst['numerical']:.6e}, analytic {worst['analytic']:.6e}"
    )
