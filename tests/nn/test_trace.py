"""Ng's trace: its D equals centered differences, its per-example terms add up to Δ."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.support.networks import build_net
from tests.support.toy_data import spirals
from worker.nn import network_from_spec
from worker.nn.gradcheck import gradient_check
from worker.nn.trace import delta_norms, ng_trace


def targets(rng, loss, output, m, k):
    if loss == "mse" and output in ("identity", "tanh"):
        return rng.normal(scale=0.5, size=(m, k))
    if loss == "mse":
        return rng.uniform(size=(m, k))
    return np.eye(k)[rng.integers(0, k, size=m)]


CASES = [
    # (layer sizes, hidden, output, loss)
    ([2, 3, 1], "sigmoid", "sigmoid", "binary_cross_entropy"),
    ([3, 5, 3], "sigmoid", "sigmoid", "binary_cross_entropy"),
    ([4, 6, 5, 3], "tanh", "softmax", "cross_entropy"),
    ([2, 4, 4, 4, 2], "relu", "softmax", "cross_entropy"),
    ([3, 5, 2], "leaky_relu", "identity", "mse"),
    ([3, 4, 2], "identity", "identity", "mse"),
    ([2, 6, 3], "tanh", "sigmoid", "mse"),
    ([3, 4, 4, 3], "sigmoid", "softmax", "mse"),
    ([2, 5, 2], "relu", "tanh", "mse"),
    ([2, 3, 3, 4], "tanh", "sigmoid", "binary_cross_entropy"),
]


@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), CASES)
@pytest.mark.parametrize("l2", [0.0, 0.5, 3.0])
def test_trace_D_equals_centered_differences(sizes, hidden, output, loss, l2):
    # Seeded so that no ReLU pre-activation lies within ε of its kink at 0, where a
    # centered difference straddles two slopes and measures neither.
    rng = np.random.default_rng(len(sizes) * 100 + sizes[1] + 1)
    m = 6
    X = rng.normal(size=(m, sizes[0]))
    Y = targets(rng, loss, output, m, sizes[-1])
    net = build_net(sizes, hidden, output, loss, seed=sizes[1])
    trace = ng_trace(net, X, Y, l2=l2)
    report = gradient_check(net, X, Y, l2=l2)
    for layer, numerical in zip(trace["layers"][:-1], report.numerical, strict=True):
        D = np.asarray(layer["D"])
        assert D.shape == numerical.shape
        rel = np.linalg.norm(D - numerical) / np.linalg.norm(D + numerical)
        assert rel < 1e-7, (layer["l"], rel)
    # The trace is written independently of the engine's fast path: they must agree.
    _, dW, db = net.gradients(X, Y, l2)
    for layer, W, b in zip(trace["layers"][:-1], dW, db, strict=True):
        D = np.asarray(layer["D"])
        np.testing.assert_allclose(D[:, 0], b, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(D[:, 1:], W.T, rtol=1e-10, atol=1e-13)
    assert trace["cost"]["total"] == pytest.approx(net.cost(X, Y, l2), rel=1e-12)
    np.testing.assert_allclose(trace["layers"][-1]["a"], net.forward(X), rtol=1e-12)


@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), CASES[:6])
def test_per_example_contributions_sum_to_Delta(sizes, hidden, output, loss):
    rng = np.random.default_rng(5)
    m = 5
    X = rng.normal(size=(m, sizes[0]))
    Y = targets(rng, loss, output, m, sizes[-1])
    net = build_net(sizes, hidden, output, loss, seed=1)
    trace = ng_trace(net, X, Y, l2=1.0, per_example=True)
    examples = trace["examples"]
    assert [e["t"] for e in examples] == list(range(1, m + 1))
    for index, layer in enumerate(trace["layers"][:-1]):
        contributions = [np.asarray(e["layers"][index]["contribution"]) for e in examples]
        np.testing.assert_allclose(sum(contributions), layer["Delta"], rtol=1e-12, atol=1e-15)
        for e, c in zip(examples, contributions, strict=True):
            # each one is the outer product δ^(l+1)_t a^(l)_tᵀ of that example's own pass
            delta_next = np.asarray(e["layers"][index + 1]["delta"])
            a = np.asarray(e["layers"][index]["a"])
            np.testing.assert_allclose(c, np.outer(delta_next, a), rtol=1e-12, atol=1e-15)
    # Each example's δ is the matching row of the vectorised δ.
    for index in range(1, len(sizes)):
        rows = [e["layers"][index]["delta"] for e in examples]
        np.testing.assert_allclose(rows, trace["layers"][index]["delta"], rtol=1e-12, atol=1e-15)


def test_D_splits_into_data_and_regularisation_with_a_zero_bias_column():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 3))
    Y = np.eye(2)[[0, 1, 1, 0]]
    net = build_net([3, 4, 2], "tanh", "softmax", "cross_entropy", seed=2)
    trace = ng_trace(net, X, Y, l2=2.0)
    for layer in trace["layers"][:-1]:
        theta = np.asarray(layer["Theta"])
        D_reg = np.asarray(layer["D_reg"])
        np.testing.assert_array_equal(D_reg[:, 0], 0.0)
        np.testing.assert_allclose(D_reg[:, 1:], 2.0 / 4 * theta[:, 1:], rtol=1e-15)
        np.testing.assert_allclose(layer["D_data"], np.asarray(layer["Delta"]) / 4, rtol=1e-15)
        np.testing.assert_allclose(
            layer["D"], np.asarray(layer["D_data"]) + D_reg, rtol=1e-15, atol=1e-300
        )
    reg = (
        2.0
        / (2 * 4)
        * sum(np.sum(np.asarray(t["Theta"])[:, 1:] ** 2) for t in trace["layers"][:-1])
    )
    assert trace["cost"]["regularization"] == pytest.approx(reg, rel=1e-14)
    assert trace["cost"]["data"] == pytest.approx(net.cost(X, Y, 0.0), rel=1e-12)


def test_shapes_and_bias_units_follow_the_notation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 2))
    Y = np.eye(2)[[0, 1, 0]]
    net = build_net([2, 4, 2], "relu", "softmax", "cross_entropy")
    trace = ng_trace(net, X, Y)
    first, hidden, out = trace["layers"]
    assert (first["l"], hidden["l"], out["l"]) == (1, 2, 3)
    assert "z" not in first
    assert "delta" not in first
    assert np.asarray(first["a"]).shape == (3, 3)  # m x (s_1 + 1)
    np.testing.assert_array_equal(np.asarray(first["a"])[:, 0], 1.0)
    np.testing.assert_array_equal(np.asarray(first["a"])[:, 1:], X)
    assert np.asarray(hidden["z"]).shape == (3, 4)
    assert np.asarray(hidden["a"]).shape == (3, 5)
    assert np.asarray(hidden["delta"]).shape == (3, 4)
    assert np.asarray(first["Delta"]).shape == (4, 3)  # s_2 x (s_1 + 1)
    assert np.asarray(hidden["D"]).shape == (2, 5)
    assert np.asarray(out["a"]).shape == (3, 2)  # no bias unit on the output
    assert (first["bias_unit"], hidden["bias_unit"], out["bias_unit"]) == (True, True, False)
    assert "Delta" not in out
    assert trace["output_delta"].startswith("matched")
    for key in ("a", "z", "delta", "Theta", "Delta", "D", "D_data", "D_reg", "contribution"):
        assert {"shape", "meaning"} <= set(trace["notation"][key])
    json.dumps(trace)  # JSON-ready: plain floats and lists


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_hand_worked_2_2_1_sigmoid_network():
    """Two examples through a 2-2-1 sigmoid/BCE network, every number from scalar arithmetic."""
    theta1 = [[0.1, 0.2, -0.3], [-0.1, 0.4, 0.5]]  # rows: hidden units; column 0: bias
    theta2 = [[0.2, -0.6, 0.7]]
    xs = [(1.0, 2.0), (-1.0, 0.5)]
    ys = [1.0, 0.0]
    lam = 0.4
    net = build_net([2, 2, 1], "sigmoid", "sigmoid", "binary_cross_entropy", [theta1, theta2])

    Delta1 = [[0.0] * 3 for _ in range(2)]
    Delta2 = [0.0] * 3
    data_cost = 0.0
    deltas2, deltas3 = [], []
    for (x1, x2), y in zip(xs, ys, strict=True):
        z2 = [theta1[j][0] + theta1[j][1] * x1 + theta1[j][2] * x2 for j in range(2)]
        a2 = [sigmoid(z) for z in z2]
        z3 = theta2[0][0] + theta2[0][1] * a2[0] + theta2[0][2] * a2[1]
        h = sigmoid(z3)
        data_cost += -(y * math.log(h) + (1 - y) * math.log(1 - h))
        d3 = h - y  # sigmoid output with cross-entropy: δ^(3) = a^(3) − y
        d2 = [theta2[0][j + 1] * d3 * a2[j] * (1 - a2[j]) for j in range(2)]
        for j in range(2):
            for k, a in enumerate((1.0, x1, x2)):
                Delta1[j][k] += d2[j] * a
        for k, a in enumerate((1.0, a2[0], a2[1])):
            Delta2[k] += d3 * a
        deltas2.append(d2)
        deltas3.append([d3])
    m = 2
    D1 = [
        [Delta1[j][k] / m + (lam / m * theta1[j][k] if k else 0.0) for k in range(3)]
        for j in range(2)
    ]
    D2 = [[Delta2[k] / m + (lam / m * theta2[0][k] if k else 0.0) for k in range(3)]]
    reg = lam / (2 * m) * (0.2**2 + 0.3**2 + 0.4**2 + 0.5**2 + 0.6**2 + 0.7**2)

    X = np.array(xs)
    Y = np.array(ys)[:, None]
    trace = ng_trace(net, X, Y, l2=lam, per_example=True)
    layer1, layer2, layer3 = trace["layers"]
    # The first pre-activations are easy to check by eye: 0.1 + 0.2·1 − 0.3·2 = −0.3, etc.
    np.testing.assert_allclose(layer2["z"][0], [-0.3, 1.3], rtol=1e-14)
    np.testing.assert_allclose(layer2["z"][1], [-0.25, -0.25], rtol=1e-14)
    np.testing.assert_allclose(layer2["delta"], deltas2, rtol=1e-12)
    np.testing.assert_allclose(layer3["delta"], deltas3, rtol=1e-12)
    np.testing.assert_allclose(layer1["Delta"], Delta1, rtol=1e-12)
    np.testing.assert_allclose(layer2["Delta"], [Delta2], rtol=1e-12)
    np.testing.assert_allclose(layer1["D"], D1, rtol=1e-12)
    np.testing.assert_allclose(layer2["D"], D2, rtol=1e-12)
    assert trace["cost"]["data"] == pytest.approx(data_cost / m, rel=1e-12)
    assert trace["cost"]["regularization"] == pytest.approx(reg, rel=1e-12)
    assert trace["examples"][1]["layers"][2]["delta"] == pytest.approx(deltas3[1], rel=1e-12)


@pytest.mark.parametrize(("sizes", "hidden", "output", "loss"), CASES)
def test_delta_norms_are_the_norms_of_the_trace(sizes, hidden, output, loss):
    rng = np.random.default_rng(7)
    net = build_net(sizes, hidden, output, loss, seed=3)
    X = rng.normal(size=(6, sizes[0]))
    Y = targets(rng, loss, output, 6, sizes[-1])
    trace = ng_trace(net, X, Y, l2=0.5)
    norms = delta_norms(net, X, Y, l2=0.5)
    assert norms["m"] == 6
    assert [row["l"] for row in norms["layers"]] == list(range(2, len(sizes) + 1))
    for row, layer, below in zip(
        norms["layers"], trace["layers"][1:], trace["layers"][:-1], strict=True
    ):
        delta = np.asarray(layer["delta"])
        assert row["units"] == delta.shape[1]
        assert row["activation"] == layer["activation"]
        assert row["delta_norm"] == pytest.approx(np.linalg.norm(delta), rel=1e-12)
        assert row["delta_rms"] == pytest.approx(np.sqrt(np.mean(delta**2)), rel=1e-12)
        assert row["D_norm"] == pytest.approx(np.linalg.norm(below["D"]), rel=1e-12)
    assert norms["layers"][-1]["delta_ratio"] == 1.0
    json.dumps(norms, allow_nan=False)


def test_delta_shrinks_layer_by_layer_in_a_deep_sigmoid_network_only():
    X, Y = spirals()
    ratios = {}
    for activation, init in [("sigmoid", "glorot"), ("relu", "he"), ("tanh", "glorot")]:
        spec = {
            "layers": [{"units": 16, "activation": activation}] * 6,
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
            "init": {"scheme": init},
        }
        net = network_from_spec(spec, 2, 3, rng=np.random.default_rng(0))
        ratios[activation] = [row["delta_ratio"] for row in delta_norms(net, X, Y)["layers"]]
    sigmoid = ratios["sigmoid"]
    # Each sigmoid layer passes back at most g' = 1/4 of δ (times the weights): it shrinks
    # monotonically toward the input, by orders of magnitude over six layers.
    assert sigmoid == sorted(sigmoid)
    assert sigmoid[0] < 1e-3
    assert min(ratios["relu"]) > 0.1
    assert min(ratios["tanh"]) > 0.1
