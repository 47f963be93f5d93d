"""Initialisation schemes and the Θ <-> W/b conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.nn import INITIALIZERS, Network, network_from_spec, theta_from_wb, wb_from_theta


def test_registry_names_are_the_api_vocabulary():
    assert set(INITIALIZERS) == {"ng", "glorot", "he", "zeros"}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_shapes_and_determinism(name):
    W, b = INITIALIZERS[name](400, 25, np.random.default_rng(7))
    W2, b2 = INITIALIZERS[name](400, 25, np.random.default_rng(7))
    assert W.shape == (400, 25)
    assert b.shape == (25,)
    np.testing.assert_array_equal(W, W2)
    np.testing.assert_array_equal(b, b2)


def test_ng_uses_epsilon_init_for_weights_and_bias():
    eps = math.sqrt(6) / math.sqrt(400 + 25)  # Ng: 0.12 for 400 -> 25
    W, b = INITIALIZERS["ng"](400, 25, np.random.default_rng(0))
    assert np.abs(W).max() <= eps
    assert np.abs(b).max() <= eps
    assert np.abs(W).max() > 0.9 * eps
    assert np.any(b != 0)


def test_glorot_he_and_zeros():
    rng = np.random.default_rng(1)
    W, b = INITIALIZERS["glorot"](300, 100, rng)
    assert np.abs(W).max() <= math.sqrt(6 / 400)
    np.testing.assert_array_equal(b, 0)
    W, b = INITIALIZERS["he"](500, 400, rng)
    assert W.std() == pytest.approx(math.sqrt(2 / 500), rel=0.02)
    np.testing.assert_array_equal(b, 0)
    W, b = INITIALIZERS["zeros"](3, 2, rng)
    assert not W.any()
    assert not b.any()


def test_theta_wb_round_trip():
    theta = np.arange(12.0).reshape(3, 4)  # 3 units out, 3 in + bias column
    W, b = wb_from_theta(theta)
    np.testing.assert_array_equal(b, [0.0, 4.0, 8.0])
    np.testing.assert_array_equal(W, [[1.0, 5.0, 9.0], [2.0, 6.0, 10.0], [3.0, 7.0, 11.0]])
    np.testing.assert_array_equal(theta_from_wb(W, b), theta)
    with pytest.raises(ValueError):
        wb_from_theta(np.ones(3))


def test_network_exports_both_layouts_and_imports_them_back():
    spec = {
        "layers": [{"units": 4, "activation": "sigmoid"}],
        "output": {"activation": "sigmoid"},
        "loss": "binary_cross_entropy",
        "init": {"scheme": "ng"},
    }
    net = network_from_spec(spec, 3, 2, rng=np.random.default_rng(2))
    thetas = net.theta()
    assert [t.shape for t in thetas] == [(4, 4), (2, 5)]
    from_theta = network_from_spec(
        {**spec, "init": {"weights": {"format": "theta", "layers": [t.tolist() for t in thetas]}}},
        3,
        2,
    )
    wb = net.wb()
    from_wb = network_from_spec(
        {
            **spec,
            "init": {
                "weights": {
                    "format": "wb",
                    "layers": [{"W": p["W"].tolist(), "b": p["b"].tolist()} for p in wb],
                }
            },
        },
        3,
        2,
    )
    for other in (from_theta, from_wb):
        for mine, theirs in zip(
            net.weights + net.biases, other.weights + other.biases, strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)
    # set_theta writes into the live arrays.
    copy = Network.initialized([3, 4, 2], ["sigmoid", "sigmoid"], "mse", "zeros")
    copy.set_theta(thetas)
    np.testing.assert_array_equal(copy.theta()[1], thetas[1])


def test_float32_and_float64_networks_start_from_the_same_numbers():
    spec = {
        "layers": [{"units": 5, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "he"},
    }
    n64 = network_from_spec(spec, 2, 3, rng=np.random.default_rng(9), dtype="float64")
    n32 = network_from_spec(spec, 2, 3, rng=np.random.default_rng(9), dtype="float32")
    assert n32.weights[0].dtype == np.float32
    np.testing.assert_array_equal(n32.weights[0], n64.weights[0].astype(np.float32))
