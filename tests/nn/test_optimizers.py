"""One step (or two) of every optimizer, with the numbers worked out by hand in comments."""

from __future__ import annotations

import numpy as np
import pytest

from worker.nn import OPTIMIZERS, make_optimizer


def run(optimizer, grads_per_step, start=(1.0, -2.0), dtype=np.float64):
    params = [np.array(start, dtype=dtype)]
    for grads in grads_per_step:
        # step() may use the gradient buffers as scratch, as the trainer allows.
        optimizer.step(params, [np.array(grads, dtype=dtype)])
    return params[0]


def test_registry_names_are_the_api_vocabulary():
    assert set(OPTIMIZERS) == {"gd", "sgd", "momentum", "nesterov", "adam"}


@pytest.mark.parametrize("name", ["gd", "sgd"])
def test_gradient_descent_step(name):
    # p - η g = [1 - 0.1·0.5, -2 - 0.1·0.25] = [0.95, -2.025]
    p = run(make_optimizer(name, learning_rate=0.1), [[0.5, 0.25]])
    np.testing.assert_allclose(p, [0.95, -2.025], rtol=0, atol=1e-15)


def test_momentum_two_steps():
    # step 1: v = -0.1·[0.5, 0.25] = [-0.05, -0.025]; p = [0.95, -2.025]
    # step 2: v = 0.9·v - 0.1·g = [-0.095, -0.0475]; p = [0.855, -2.0725]
    opt = make_optimizer("momentum", learning_rate=0.1, momentum=0.9)
    p = run(opt, [[0.5, 0.25], [0.5, 0.25]])
    np.testing.assert_allclose(p, [0.855, -2.0725], rtol=0, atol=1e-15)


def test_nesterov_two_steps():
    # step 1: v = [-0.05, -0.025]; p += 0.9·v - 0.1·g = [-0.095, -0.0475] -> [0.905, -2.0475]
    # step 2: v = 0.9·v - 0.1·g = [-0.095, -0.0475];
    #         p += 0.9·v - 0.1·g = [-0.1355, -0.06775] -> [0.7695, -2.11525]
    opt = make_optimizer("nesterov", learning_rate=0.1, momentum=0.9)
    p = run(opt, [[0.5, 0.25], [0.5, 0.25]])
    np.testing.assert_allclose(p, [0.7695, -2.11525], rtol=0, atol=1e-15)


def test_adam_two_steps():
    # η = 0.1, β1 = 0.9, β2 = 0.999, ε = 1e-8.
    # step 1, g = [0.5, 0.25]: m̂ = g, v̂ = g², so p -= 0.1·g/(|g| + 1e-8):
    #   p = [1 - 0.05/0.50000001, -2 - 0.025/0.25000001] = [0.900000002, -2.099999996]
    # step 2, g = [-0.5, 0.25]: m = [0.045 - 0.05, 0.0225 + 0.025] = [-0.005, 0.0475]
    #   m̂ = m / 0.19 = [-0.0263157894..., 0.25];
    #   v = [0.00024975 + 0.00025, 0.0000624375 + 0.0000625], v̂ = v / 0.001999 = [0.25, 0.0625]
    #   p -= 0.1·m̂/(√v̂ + 1e-8) = [-0.00526315778947368, 0.099999996]
    opt = make_optimizer("adam", learning_rate=0.1, beta1=0.9, beta2=0.999, epsilon=1e-8)
    p = run(opt, [[0.5, 0.25]])
    np.testing.assert_allclose(p, [0.900000002, -2.099999996], rtol=0, atol=1e-15)
    p = run(make_optimizer("adam", learning_rate=0.1), [[0.5, 0.25], [-0.5, 0.25]])
    np.testing.assert_allclose(p, [0.90526315978947364, -2.199999992], rtol=0, atol=1e-12)
    assert opt.t == 1


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_stay_float32(name):
    opt = make_optimizer(name, learning_rate=0.1)
    p = run(opt, [[0.5, 0.25], [0.1, -0.2]], dtype=np.float32)
    assert p.dtype == np.float32
    for value in opt.state_dict().values():
        if isinstance(value, list):
            assert all(a.dtype == np.float32 for a in value)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name):
    first = make_optimizer(name, learning_rate=0.05)
    p1 = [np.array([0.3, -0.7])]
    first.step(p1, [np.array([0.2, 0.1])])
    second = make_optimizer(name, learning_rate=0.05)
    second.load_state_dict(first.state_dict())
    p2 = [p1[0].copy()]
    first.step(p1, [np.array([-0.4, 0.3])])
    second.step(p2, [np.array([-0.4, 0.3])])
    np.testing.assert_array_equal(p1[0], p2[0])
