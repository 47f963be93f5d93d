"""The network: gradients against centered differences, cost formula, spec handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.nn import ACTIVATIONS, Network, SpecError, network_from_spec
from worker.nn.activations import HIDDEN_ACTIVATIONS

EPSILON = 1e-5
TOLERANCE = 1e-7

# Every output activation with every loss it can be paired with (cross-entropies need
# outputs in (0, 1)): matched pairs and unmatched ones.
OUTPUT_LOSS_PAIRS = [
    ("sigmoid", "binary_cross_entropy"),
    ("sigmoid", "cross_entropy"),
    ("sigmoid", "mse"),
    ("softmax", "cross_entropy"),
    ("softmax", "binary_cross_entropy"),
    ("softmax", "mse"),
    ("tanh", "mse"),
    ("relu", "mse"),
    ("leaky_relu", "mse"),
    ("identity", "mse"),
]


def centered_difference_gradients(net, X, Y, l2):
    """dJ/dp for every weight and bias by (J(p + ε) - J(p - ε)) / 2ε."""
    numeric = []
    for param in net.weights + net.biases:
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + EPSILON
            plus = net.cost(X, Y, l2)
            param[index] = saved - EPSILON
            minus = net.cost(X, Y, l2)
            param[index] = saved
            grad[index] = (plus - minus) / (2 * EPSILON)
        numeric.append(grad)
    return numeric


def relative_difference(net, X, Y, l2):
    _, dW, db = net.gradients(X, Y, l2)
    analytic = np.concatenate([g.ravel() for g in dW + db])
    numeric = np.concatenate([g.ravel() for g in centered_difference_gradients(net, X, Y, l2)])
    return np.linalg.norm(numeric - analytic) / np.linalg.norm(numeric + analytic)


def problem(hidden, output, loss, seed):
    """A 3-5-4-3 float64 network (random biases, so no pre-activation sits on a kink)."""
    rng = np.random.default_rng(seed)
    net = Network.initialized([3, 5, 4, 3], [hidden, hidden, output], loss, "ng", rng)
    X = rng.normal(size=(6, 3))
    if loss == "mse":
        Y = rng.normal(size=(6, 3))
    elif loss == "binary_cross_entropy":
        Y = (rng.random((6, 3)) > 0.5).astype(float)
    else:
        Y = np.eye(3)[rng.integers(0, 3, 6)]
    zs, _ = net.forward_all(X)
    # A kink of relu/leaky_relu within ε of a pre-activation would spoil the differences.
    assert min(np.abs(z).min() for z in zs) > 10 * EPSILON
    return net, X, Y


@pytest.mark.parametrize("l2", [0.0, 0.5])
@pytest.mark.parametrize(("output", "loss"), OUTPUT_LOSS_PAIRS)
def test_gradients_for_every_output_and_loss(output, loss, l2):
    net, X, Y = problem("tanh", output, loss, seed=11)
    assert relative_difference(net, X, Y, l2) < TOLERANCE


@pytest.mark.parametrize("l2", [0.0, 0.5])
@pytest.mark.parametrize("hidden", sorted(HIDDEN_ACTIVATIONS))
@pytest.mark.parametrize(("output", "loss"), [("softmax", "cross_entropy"), ("sigmoid", "mse")])
def test_gradients_for_every_hidden_activation(hidden, output, loss, l2):
    net, X, Y = problem(hidden, output, loss, seed=12)
    assert relative_difference(net, X, Y, l2) < TOLERANCE


def test_cost_is_data_part_plus_l2_on_weights_only():
    net = Network(
        [2, 1],
        ["identity"],
        "mse",
        weights=[np.array([[1.0], [2.0]])],
        biases=[np.array([5.0])],
    )
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    Y = np.array([[6.0], [6.0]])
    # outputs 6 and 7: data = (0 + 1) / (2·2); L2 = (λ / (2·2)) (1 + 4); bias excluded.
    assert net.cost(X, Y, 0.0) == pytest.approx(0.25)
    assert net.cost(X, Y, 2.0) == pytest.approx(0.25 + 2.0 / 4 * 5)
    cost, dW, db = net.gradients(X, Y, 2.0)
    # dW = Δ/m + (λ/m) W with δ = [0, 1]: Δ = Xᵀδ = [0, 1]ᵀ; db = Σδ / m = 0.5.
    np.testing.assert_allclose(dW[0], [[0.0 + 1.0], [0.5 + 2.0]])
    np.testing.assert_allclose(db[0], [0.5])
    assert cost == pytest.approx(2.75)


def test_gradients_returns_copies_and_leaves_weights_alone():
    net, X, Y = problem("tanh", "softmax", "cross_entropy", seed=1)
    before = [w.copy() for w in net.weights]
    _, dW, _ = net.gradients(X, Y, 0.1)
    dW[0][...] = 0
    _, dW_again, _ = net.gradients(X, Y, 0.1)
    assert dW_again[0].any()
    for w, b in zip(net.weights, before, strict=True):
        np.testing.assert_array_equal(w, b)


def test_forward_all_exposes_every_layer():
    net, X, _ = problem("sigmoid", "softmax", "cross_entropy", seed=2)
    zs, acts = net.forward_all(X)
    assert [a.shape for a in acts] == [(6, 3), (6, 5), (6, 4), (6, 3)]
    np.testing.assert_array_equal(acts[0], X)
    np.testing.assert_allclose(
        acts[1], ACTIVATIONS["sigmoid"].forward(X @ net.weights[0] + net.biases[0])
    )
    np.testing.assert_allclose(zs[2], acts[2] @ net.weights[2] + net.biases[2])
    np.testing.assert_allclose(acts[-1], net.forward(X))


def test_float32_network_computes_in_float32():
    spec = {
        "layers": [{"units": 6, "activation": "relu"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "he"},
    }
    net32 = network_from_spec(spec, 4, 3, rng=np.random.default_rng(0), dtype="float32")
    net64 = network_from_spec(spec, 4, 3, rng=np.random.default_rng(0), dtype="float64")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 4))
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    assert net32.forward(X).dtype == np.float32
    cost32, dW32, db32 = net32.gradients(X, Y, 0.3)
    cost64, dW64, _ = net64.gradients(X, Y, 0.3)
    assert all(g.dtype == np.float32 for g in dW32 + db32)
    assert cost32 == pytest.approx(cost64, rel=1e-5)
    np.testing.assert_allclose(dW32[0], dW64[0], rtol=1e-4, atol=1e-6)


def test_repr_reads_like_the_architecture():
    net = Network.initialized(
        [2, 8, 8, 2], ["tanh", "tanh", "softmax"], "cross_entropy", rng=np.random.default_rng(0)
    )
    assert repr(net) == "Network(2→8 tanh→8 tanh→2 softmax)"


SPEC = {
    "layers": [{"units": 3, "activation": "tanh"}],
    "output": {"activation": "softmax"},
    "loss": "cross_entropy",
    "init": {"scheme": "glorot"},
}


@pytest.mark.parametrize(
    "change",
    [
        {"layers": [{"units": 3, "activation": "softmax"}]},
        {"layers": [{"units": 3, "activation": "swish"}]},
        {"layers": [{"units": 0, "activation": "tanh"}]},
        {"loss": "hinge"},
        {"init": {"scheme": "orthogonal"}},
        {"init": {"weights": {"format": "theta", "layers": [[[0.0, 1.0]]]}}},
        {"init": {"weights": {"format": "matlab", "layers": []}}},
        {"output": {}},
    ],
)
def test_bad_specs_raise_spec_error(change):
    with pytest.raises(SpecError):
        network_from_spec({**SPEC, **change}, 2, 2, rng=np.random.default_rng(0))


def test_random_scheme_needs_a_generator_and_dtype_is_checked():
    with pytest.raises(SpecError):
        network_from_spec(SPEC, 2, 2)
    with pytest.raises(SpecError):
        network_from_spec(SPEC, 2, 2, rng=np.random.default_rng(0), dtype="float16")


def test_same_seed_same_weights_and_outputs():
    a = network_from_spec(SPEC, 2, 2, rng=np.random.default_rng(5))
    b = network_from_spec(SPEC, 2, 2, rng=np.random.default_rng(5))
    c = network_from_spec(SPEC, 2, 2, rng=np.random.default_rng(6))
    X = np.random.default_rng(0).normal(size=(5, 2))
    assert np.array_equal(a.forward(X), b.forward(X))
    assert not np.array_equal(a.forward(X), c.forward(X))


def test_costs_are_finite_for_saturated_sigmoid_outputs():
    net = Network(
        [1, 1], ["sigmoid"], "binary_cross_entropy", [np.array([[1000.0]])], [np.zeros(1)]
    )
    assert math.isfinite(net.cost(np.array([[1.0]]), np.array([[0.0]])))
