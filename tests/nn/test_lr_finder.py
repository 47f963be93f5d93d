"""Smith's learning-rate range test: bounded, never raising, and its suggestion trains well.

The suggestion is checked the way a user would use it: the finder sees one sample of a
problem, the network then trains with the suggested rate on that sample, and its accuracy
is measured on a fresh sample (another seed) that neither the finder nor the training saw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.toy_data import moons, sine, spirals
from worker.nn import SpecError, Trainer, TrainingConfig, network_from_spec
from worker.nn.lr_finder import MAX_STEPS, lr_range_test


def classifier(hidden, activation, n_classes, init="glorot"):
    spec = {
        "layers": [{"units": u, "activation": activation} for u in hidden],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": init},
    }
    return spec, network_from_spec(spec, 2, n_classes, rng=np.random.default_rng(0))


def held_out_accuracy(net, X, Y):
    return float(np.mean(net.forward(X).argmax(axis=1) == Y.argmax(axis=1)))


def train(spec, n_classes, X, Y, optimizer, learning_rate, batch_size, epochs):
    net = network_from_spec(spec, 2, n_classes, rng=np.random.default_rng(0))
    training = {
        "optimizer": {"name": optimizer, "learning_rate": learning_rate},
        "batch_size": batch_size,
        "epochs": epochs,
        "seed": 0,
    }
    list(Trainer(net, X, Y, TrainingConfig.from_spec(training)).epochs())
    return net


@pytest.mark.parametrize(
    ("problem", "hidden", "activation", "init", "optimizer", "batch_size", "epochs"),
    [
        ("spirals", (32, 32), "tanh", "glorot", "sgd", 32, 150),
        ("spirals", (32, 32), "tanh", "glorot", "adam", 32, 150),
        ("spirals", (64, 64), "relu", "he", "momentum", 32, 150),
        ("moons", (16,), "relu", "he", "adam", 32, 100),
    ],
)
def test_the_suggested_rate_trains_well_on_data_the_finder_never_saw(
    problem, hidden, activation, init, optimizer, batch_size, epochs
):
    data = {"spirals": spirals, "moons": moons}[problem]
    X, Y = data(seed=0)
    X_new, Y_new = data(seed=1)  # a fresh sample: for judging only
    spec, net = classifier(hidden, activation, Y.shape[1], init)
    config = TrainingConfig.from_spec({"optimizer": {"name": optimizer}, "batch_size": batch_size})
    found = lr_range_test(net, X, Y, config, min_lr=1e-5, max_lr=10.0, steps=100)
    rate = found["suggested_learning_rate"]
    assert 1e-5 <= rate < found["min_loss"]["learning_rate"]
    good = train(spec, Y.shape[1], X, Y, optimizer, rate, batch_size, epochs)
    too_low = train(spec, Y.shape[1], X, Y, optimizer, 1e-4, batch_size, epochs)
    good_accuracy = held_out_accuracy(good, X_new, Y_new)
    assert good_accuracy >= 0.95, (rate, good_accuracy)
    assert good_accuracy >= held_out_accuracy(too_low, X_new, Y_new) + 0.2


def test_the_range_is_exponential_bounded_and_the_caller_s_network_untouched():
    X, Y = moons(seed=0)
    _, net = classifier((8,), "tanh", 2)
    before = [p.copy() for p in net.parameters()]
    config = TrainingConfig.from_spec({"optimizer": {"name": "gd"}})
    found = lr_range_test(net, X, Y, config, min_lr=1e-4, max_lr=1e-2, steps=21)
    assert found["stop_reason"] == "steps"
    assert found["steps_run"] == len(found["points"]) == 21
    rates = [p["learning_rate"] for p in found["points"]]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[-1] == pytest.approx(1e-2)
    np.testing.assert_allclose(np.diff(np.log10(rates)), 0.1)
    for p, q in zip(net.parameters(), before, strict=True):
        assert np.array_equal(p, q)


def test_a_full_batch_test_starts_from_the_network_s_own_loss_and_smooths_by_hand():
    X, Y = moons(seed=0)
    _, net = classifier((8,), "tanh", 2)
    config = TrainingConfig.from_spec({"optimizer": {"name": "gd"}})
    found = lr_range_test(net, X, Y, config, min_lr=1e-3, max_lr=1.0, steps=4, smoothing=0.9)
    points = found["points"]
    assert points[0]["raw_loss"] == pytest.approx(net.cost(X, Y))
    # Bias-corrected EMA: the first smoothed value is the first loss itself.
    raw = [p["raw_loss"] for p in points]
    average, expected = 0.0, []
    for i, loss in enumerate(raw):
        average = 0.9 * average + 0.1 * loss
        expected.append(average / (1 - 0.9 ** (i + 1)))
    np.testing.assert_allclose([p["loss"] for p in points], expected, rtol=1e-12)
    assert points[0]["loss"] == pytest.approx(raw[0])
    # Plain gradient descent: step 1's loss is the loss after one step of rate 1e-3.
    one_step = net.copy()
    _, dW, db = one_step.gradients(X, Y)
    for W, b, gW, gb in zip(one_step.weights, one_step.biases, dW, db, strict=True):
        W -= 1e-3 * gW
        b -= 1e-3 * gb
    assert raw[1] == pytest.approx(one_step.cost(X, Y), rel=1e-12)


def test_divergence_ends_the_test_without_raising():
    X, Y = sine(seed=0)
    spec = {
        "layers": [{"units": 16, "activation": "relu"}],
        "output": {"activation": "identity"},
        "loss": "mse",
        "init": {"scheme": "he"},
    }
    net = network_from_spec(spec, 1, 1, rng=np.random.default_rng(0))
    config = TrainingConfig.from_spec({"optimizer": {"name": "gd"}}, classification=False)
    found = lr_range_test(net, X * 10, Y * 10, config, min_lr=1e-4, max_lr=1e6, steps=200)
    assert found["stop_reason"] in {"diverged", "non_finite"}
    assert found["steps_run"] < 200
    assert all(math.isfinite(p["loss"]) and math.isfinite(p["raw_loss"]) for p in found["points"])
    assert math.isfinite(found["suggested_learning_rate"])
    assert found["suggested_learning_rate"] < found["points"][-1]["learning_rate"]


def test_a_network_that_is_non_finite_from_the_start_gets_no_suggestion():
    X, Y = moons(seed=0)
    _, net = classifier((8,), "tanh", 2)
    net.weights[0][...] = np.nan
    found = lr_range_test(net, X, Y, TrainingConfig.from_spec({}), steps=10)
    assert found["points"] == []
    assert found["suggested_learning_rate"] is None
    assert found["stop_reason"] == "non_finite"


def test_same_seed_same_curve():
    X, Y = spirals(seed=0)
    _, net = classifier((32,), "tanh", 3)
    config = TrainingConfig.from_spec({"optimizer": {"name": "sgd"}, "batch_size": 16, "seed": 4})
    first = lr_range_test(net, X, Y, config, steps=30)
    assert lr_range_test(net, X, Y, config, steps=30) == first
    other = TrainingConfig.from_spec({"optimizer": {"name": "sgd"}, "batch_size": 16, "seed": 5})
    assert lr_range_test(net, X, Y, other, steps=30)["points"] != first["points"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"min_lr": 0.0},
        {"min_lr": 1.0, "max_lr": 0.5},
        {"max_lr": math.inf},
        {"steps": 1},
        {"steps": MAX_STEPS + 1},
        {"smoothing": 1.0},
        {"stop_factor": 1.0},
    ],
)
def test_bad_arguments_raise_spec_error(arguments):
    X, Y = moons(n=20, seed=0)
    _, net = classifier((4,), "tanh", 2)
    with pytest.raises(SpecError):
        lr_range_test(net, X, Y, TrainingConfig.from_spec({}), **arguments)
