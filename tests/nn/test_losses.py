"""Losses: values worked by hand, gradients against finite differences, the matched pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.nn import LOSSES, MATCHED_PAIRS


def test_registry_names_and_matched_pairs():
    assert set(LOSSES) == {"binary_cross_entropy", "cross_entropy", "mse"}
    assert MATCHED_PAIRS == {
        ("sigmoid", "binary_cross_entropy"),
        ("softmax", "cross_entropy"),
        ("identity", "mse"),
    }


def test_values_worked_by_hand():
    h = np.array([[0.8, 0.4], [0.5, 0.1]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0]])
    # BCE: -(1/2) [log .8 + log .6 + log .5 + log .1]
    bce = -(math.log(0.8) + math.log(0.6) + math.log(0.5) + math.log(0.1)) / 2
    assert LOSSES["binary_cross_entropy"].value(h, Y) == pytest.approx(bce, rel=1e-14)
    # CE: -(1/2) [log .8 + log .1]
    assert LOSSES["cross_entropy"].value(h, Y) == pytest.approx(
        -(math.log(0.8) + math.log(0.1)) / 2, rel=1e-14
    )
    # MSE: (1/(2·2)) [.04 + .16 + .25 + .81] = 1.26 / 4
    assert LOSSES["mse"].value(h, Y) == pytest.approx(1.26 / 4, rel=1e-14)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_is_m_times_dJ_doutput(name):
    rng = np.random.default_rng(5)
    m, k = 4, 3
    output = rng.uniform(0.1, 0.9, size=(m, k))
    output /= output.sum(axis=1, keepdims=True) * 1.1
    Y = np.eye(k)[rng.integers(0, k, m)]
    loss = LOSSES[name]
    h = 1e-6
    numeric = np.zeros_like(output)
    for index in np.ndindex(output.shape):
        plus, minus = output.copy(), output.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (loss.value(plus, Y) - loss.value(minus, Y)) / (2 * h)
    np.testing.assert_allclose(loss.gradient(output, Y), m * numeric, rtol=1e-6)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "cross_entropy"])
def test_saturated_outputs_cost_a_finite_amount(name):
    value = LOSSES[name].value(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert math.isfinite(value)
    assert value > 100
