"""The gradient check: centered differences agree with backprop, and disagreement is found."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.networks import build_net, debug_weights
from worker.nn.gradcheck import GradientCheckReport, gradient_check


def ng_check_problem():
    """Ng's checkNNGradients: a 3-5-3 sigmoid network, m = 5, debug weights and data."""
    theta1 = debug_weights(5, 3)
    theta2 = debug_weights(3, 5)
    X = debug_weights(5, 2)  # m = 5 examples of 3 features
    labels = 1 + np.arange(1, 6) % 3  # y = 1 + mod(1:m, num_labels)
    Y = np.eye(3)[labels - 1]
    net = build_net([3, 5, 3], "sigmoid", "sigmoid", "binary_cross_entropy", [theta1, theta2])
    return net, X, Y


@pytest.mark.parametrize("l2", [0.0, 3.0])
def test_ng_check_nn_gradients_is_below_1e9(l2):
    net, X, Y = ng_check_problem()
    report = gradient_check(net, X, Y, l2=l2, epsilon=1e-4)
    assert report.relative_difference < 1e-9
    assert all(r < 1e-8 for r in report.per_layer)
    assert report.passed
    assert report.n_parameters == 5 * 4 + 3 * 6
    assert report.n_examples == 5


def test_regularisation_changes_the_gradient_but_not_the_agreement():
    net, X, Y = ng_check_problem()
    plain = gradient_check(net, X, Y, l2=0.0)
    regularised = gradient_check(net, X, Y, l2=3.0)
    # (λ/m) Θ is added to the weights, never to the bias column.
    for a0, a3, theta in zip(plain.analytic, regularised.analytic, net.theta(), strict=True):
        np.testing.assert_allclose(a3[:, 1:] - a0[:, 1:], 3.0 / 5 * theta[:, 1:], atol=1e-12)
        np.testing.assert_array_equal(a3[:, 0], a0[:, 0])


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu", "identity"])
@pytest.mark.parametrize(
    ("output", "loss"),
    [
        ("sigmoid", "binary_cross_entropy"),
        ("softmax", "cross_entropy"),
        ("identity", "mse"),
        ("sigmoid", "mse"),
        ("softmax", "mse"),
        ("tanh", "mse"),
    ],
)
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_every_activation_and_loss_passes(hidden, output, loss, l2):
    rng = np.random.default_rng(11)
    sizes = [3, 4, 5, 3]
    X = rng.normal(size=(7, 3))
    Y = np.eye(3)[rng.integers(0, 3, size=7)]
    net = build_net(sizes, hidden, output, loss, seed=3)
    report = gradient_check(net, X, Y, l2=l2)
    assert report.passed, report.to_dict()
    assert len(report.per_layer) == 3
    assert [g.shape for g in report.numerical] == [(4, 4), (5, 5), (3, 6)]


def test_the_network_is_restored_bit_for_bit():
    net, X, Y = ng_check_problem()
    before = [w.copy() for w in net.weights] + [b.copy() for b in net.biases]
    gradient_check(net, X, Y, l2=1.0)
    after = list(net.weights) + list(net.biases)
    for x, y in zip(before, after, strict=True):
        assert x.tobytes() == y.tobytes()


class BrokenGradients:
    """A network whose analytic gradient of one weight is wrong, as a buggy backprop would be."""

    def __init__(self, net, layer, inp, unit, error):
        self.net, self.layer, self.inp, self.unit, self.error = net, layer, inp, unit, error
        self.weights, self.biases = net.weights, net.biases

    def cost(self, X, Y, l2):
        return self.net.cost(X, Y, l2)

    def gradients(self, X, Y, l2):
        cost, dW, db = self.net.gradients(X, Y, l2)
        dW = [w.copy() for w in dW]
        dW[self.layer][self.inp, self.unit] += self.error
        return cost, dW, db


def test_a_wrong_gradient_fails_and_the_worst_parameter_points_at_it():
    net, X, Y = ng_check_problem()
    # W^(2)[4, 1] is Θ^(2)[1, 5]: unit 1 of layer 3, from unit 4 of layer 2 (column 0 = bias).
    report = gradient_check(BrokenGradients(net, 1, 4, 1, 1e-3), X, Y)
    assert not report.passed
    assert report.relative_difference > 1e-7
    assert report.per_layer[0] < 1e-9  # layer 1 is untouched
    assert report.per_layer[1] > 1e-7
    assert report.worst.layer == 2
    assert report.worst.index == (1, 5)
    assert report.worst.abs_diff == pytest.approx(1e-3, rel=1e-4)
    assert report.worst.analytic - report.worst.numerical == pytest.approx(1e-3, rel=1e-4)


def test_threshold_decides_passed():
    net, X, Y = ng_check_problem()
    report = gradient_check(BrokenGradients(net, 0, 0, 0, 1e-6), X, Y, threshold=1e-2)
    assert 1e-9 < report.relative_difference < 1e-2
    assert report.passed


def test_report_to_dict_is_json_ready():
    import json

    net, X, Y = ng_check_problem()
    report = gradient_check(net, X, Y, l2=3.0)
    data = json.loads(json.dumps(report.to_dict(include_gradients=True)))
    assert isinstance(report, GradientCheckReport)
    assert data["passed"] is True
    assert data["per_layer"][1]["layer"] == 2
    assert data["worst"]["layer"] in (1, 2)
    assert len(data["worst"]["index"]) == 2
    assert np.asarray(data["numerical"][0]).shape == (5, 4)


def test_epsilon_must_be_positive():
    net, X, Y = ng_check_problem()
    with pytest.raises(ValueError, match="epsilon"):
        gradient_check(net, X, Y, epsilon=0.0)


class ShiftedLayer(BrokenGradients):
    """Every weight gradient of one layer is off by the same amount."""

    def gradients(self, X, Y, l2):
        cost, dW, db = self.net.gradients(X, Y, l2)
        dW = [w.copy() for w in dW]
        dW[self.layer] += self.error
        return cost, dW, db


def test_a_sample_of_parameters_is_checked_when_asked():
    net, X, Y = ng_check_problem()
    report = gradient_check(net, X, Y, max_parameters=10, rng=np.random.default_rng(4))
    assert 2 <= report.n_checked <= 11
    assert report.n_checked == sum(int((~np.isnan(n)).sum()) for n in report.numerical)
    assert all((~np.isnan(n)).any() for n in report.numerical)  # every layer sampled
    assert report.passed
    again = gradient_check(net, X, Y, max_parameters=10, rng=np.random.default_rng(4))
    for a, b in zip(report.numerical, again.numerical, strict=True):
        np.testing.assert_array_equal(a, b)
    wrong = gradient_check(
        ShiftedLayer(net, 0, 0, 0, 1e-3), X, Y, max_parameters=10, rng=np.random.default_rng(4)
    )
    assert not wrong.passed
    assert wrong.worst.layer == 1
    assert wrong.worst.index[1] != 0  # only weights were shifted, never a bias


def test_sampling_needs_a_generator():
    net, X, Y = ng_check_problem()
    with pytest.raises(ValueError, match="rng"):
        gradient_check(net, X, Y, max_parameters=3)
