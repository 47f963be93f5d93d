"""``record.activations``: per-layer statistics of an epoch's last mini-batch.

Checked against the same numbers computed directly from the definitions (forward pass by
hand with numpy) on tiny networks with units built to be dead or saturated; and recording
must not change a single bit of training, uninterrupted or resumed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.toy_data import blobs, moons
from worker.nn import Network, Trainer, TrainingConfig, network_from_spec

# A 2 → 3 relu → 3 tanh → 1 sigmoid network built by hand, for 6 examples:
# relu unit 1 has bias -100, so z ≤ 0 on every example: dead;
# tanh unit 2 has weights 50, so |tanh| > 0.99 on every example but (-0.5, -0.5);
# tanh unit 3 sits at tanh(2) = 0.964 on every example: near its bound, not beyond 0.99.
X6 = np.array([[0.0, 0.0], [1.0, 0.5], [-1.0, 0.5], [0.5, -1.0], [2.0, 1.0], [-0.5, -0.5]])
Y6 = np.array([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]])
W1 = np.array([[1.0, 0.5, -0.3], [1.0, -0.4, 0.8]])
B1 = np.array([-100.0, 0.1, 0.2])
W2 = np.array([[0.3, 50.0, 0.0], [-0.2, 50.0, 0.0], [0.1, 50.0, 0.0]])
B2 = np.array([0.05, 0.0, 2.0])
W3 = np.array([[1.0], [-1.0], [0.5]])
B3 = np.array([0.0])


def hand_network(dtype="float64", middle="tanh"):
    return Network(
        [2, 3, 3, 1],
        ["relu", middle, "sigmoid"],
        "binary_cross_entropy",
        [W1, W2, W3],
        [B1, B2, B3],
        dtype,
    )


def expected_stats(X, middle="tanh"):
    """The statistics from their definitions, computed on rows of examples."""
    z1 = X @ W1 + B1
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W2 + B2
    a2 = np.tanh(z2) if middle == "tanh" else 1 / (1 + np.exp(-z2))
    u2 = a2 if middle == "tanh" else 2 * a2 - 1  # = tanh(z/2) for sigmoid
    a3 = 1 / (1 + np.exp(-(a2 @ W3 + B3)))

    def saturated(u):
        # The documented rule: |u| > 0.99 on more than half of the examples.
        return float(np.mean(np.mean(np.abs(u) > 0.99, axis=0) > 0.5))

    return [
        {
            "layer": 1,
            "dead_fraction": float(np.mean(np.all(z1 <= 0, axis=0))),
            "saturated_fraction": None,
            "mean": a1.mean(),
            "std": a1.std(),
        },
        {
            "layer": 2,
            "dead_fraction": None,
            "saturated_fraction": saturated(u2),
            "mean": a2.mean(),
            "std": a2.std(),
        },
        {
            "layer": 3,
            "dead_fraction": None,
            "saturated_fraction": None,  # an output near 0 or 1 is a confident one
            "mean": a3.mean(),
            "std": a3.std(),
        },
    ]


def assert_stats_close(actual, expected, rtol=1e-12):
    assert [s["layer"] for s in actual] == [s["layer"] for s in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got["dead_fraction"] == want["dead_fraction"]
        assert got["saturated_fraction"] == want["saturated_fraction"]
        assert got["mean"] == pytest.approx(want["mean"], rel=rtol, abs=1e-15)
        assert got["std"] == pytest.approx(want["std"], rel=rtol, abs=1e-15)


@pytest.mark.parametrize("middle", ["tanh", "sigmoid"])
def test_full_batch_statistics_match_the_definitions(middle):
    config = TrainingConfig.from_spec({"epochs": 1, "record": {"activations": True}})
    (stats,) = list(Trainer(hand_network(middle=middle), X6, Y6, config).epochs())
    expected = expected_stats(X6, middle)
    # What the network was built to show: one dead relu unit of three, and one unit of
    # three saturated on 5 of 6 examples (more than half), the others not (for sigmoid,
    # unit 3 sits at sigmoid(2) = 0.88, unit 2 above 0.995 wherever z ≥ 5.3).
    assert expected[0]["dead_fraction"] == pytest.approx(1 / 3)
    assert expected[1]["saturated_fraction"] == pytest.approx(1 / 3)
    assert_stats_close(stats.activation_stats, expected)


def test_a_mini_batch_run_describes_its_last_batch():
    # 6 examples in batches of 4: the epoch ends on the 2 examples the first shuffle put
    # last. A learning rate of 1e-12 keeps the weights at their initial values to ~1e-12.
    training = {
        "optimizer": {"name": "sgd", "learning_rate": 1e-12},
        "batch_size": 4,
        "epochs": 1,
        "seed": 11,
        "record": {"activations": True},
    }
    (stats,) = list(Trainer(hand_network(), X6, Y6, TrainingConfig.from_spec(training)).epochs())
    last_batch = np.random.default_rng(11).permutation(6)[4:]
    assert_stats_close(stats.activation_stats, expected_stats(X6[last_batch]), rtol=1e-9)


def test_float32_statistics_agree_with_float64():
    config = TrainingConfig.from_spec({"epochs": 1, "record": {"activations": True}})
    (stats,) = list(Trainer(hand_network("float32"), X6, Y6, config).epochs())
    assert_stats_close(stats.activation_stats, expected_stats(X6), rtol=1e-5)


@pytest.mark.parametrize(
    ("hidden", "output", "loss", "dead", "saturated"),
    [
        ("leaky_relu", "softmax", "cross_entropy", [True, False], [False, False]),
        ("sigmoid", "identity", "mse", [False, False], [True, False]),
        ("identity", "relu", "mse", [False, True], [False, False]),
    ],
)
def test_each_layer_reports_only_what_its_activation_can_do(hidden, output, loss, dead, saturated):
    X, Y = blobs(n=40)
    spec = {
        "layers": [{"units": 5, "activation": hidden}],
        "output": {"activation": output},
        "loss": loss,
        "init": {"scheme": "glorot"},
    }
    net = network_from_spec(spec, 2, 2, rng=np.random.default_rng(0))
    config = TrainingConfig.from_spec(
        {"epochs": 2, "batch_size": 16, "record": {"activations": True}}
    )
    for epoch in Trainer(net, X, Y, config).epochs():
        layers = epoch.activation_stats
        assert [s["dead_fraction"] is not None for s in layers] == dead
        assert [s["saturated_fraction"] is not None for s in layers] == saturated
        for s in layers:
            assert math.isfinite(s["mean"])
            assert s["std"] >= 0


def test_leaky_relu_units_never_active_count_as_dead():
    net = hand_network()
    leaky = Network(
        net.layer_sizes, ["leaky_relu", "tanh", "sigmoid"], net.loss, net.weights, net.biases
    )
    config = TrainingConfig.from_spec({"epochs": 1, "record": {"activations": True}})
    (stats,) = list(Trainer(leaky, X6, Y6, config).epochs())
    assert stats.activation_stats[0]["dead_fraction"] == pytest.approx(1 / 3)


RECORDED_CASES = {
    "sgd mini-batches with validation": (
        {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "batch_size": 16, "epochs": 6},
        "relu",
        "float64",
    ),
    "adam full batch": (
        {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 6, "l2": 0.1},
        "tanh",
        "float64",
    ),
    "momentum float32 early stopping": (
        {
            "optimizer": {"name": "momentum", "learning_rate": 0.2},
            "batch_size": 10,
            "epochs": 40,
            "early_stopping": {"patience": 3, "min_delta": 0.0},
        },
        "sigmoid",
        "float32",
    ),
}


def recorded_run(training, activation, dtype, record, X, Y, init_seed=0):
    spec = {
        "layers": [{"units": 8, "activation": activation}] * 2,
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "he" if activation == "relu" else "glorot"},
    }
    net = network_from_spec(spec, 2, 2, rng=np.random.default_rng(init_seed), dtype=dtype)
    config = TrainingConfig.from_spec({**training, "record": record}, validation_split=0.25)
    return Trainer(net, X, Y, config)


def losses_of(stats):
    return [(s.epoch, s.train_loss, s.val_loss, s.train_accuracy, s.val_accuracy) for s in stats]


@pytest.mark.parametrize("name", sorted(RECORDED_CASES))
def test_recording_changes_no_bit_of_training(name):
    training, activation, dtype = RECORDED_CASES[name]
    X, Y = moons(n=80, seed=2)
    runs = {}
    for label, record in [
        ("off", {}),
        ("activations", {"activations": True}),
        ("both", {"activations": True, "grad_norms": True}),
    ]:
        trainer = recorded_run(training, activation, dtype, record, X, Y)
        stats = list(trainer.epochs())
        runs[label] = (losses_of(stats), trainer.net.parameters(), stats, trainer.state_bytes())
    off_losses, off_params, off_stats, off_state = runs["off"]
    assert all(s.activation_stats is None for s in off_stats)
    for label in ("activations", "both"):
        losses, params, stats, state = runs[label]
        assert losses == off_losses
        for a, b in zip(params, off_params, strict=True):
            assert a.dtype == b.dtype
            assert np.array_equal(a, b)
        assert state == off_state  # weights, optimizer moments and generator state alike
        assert all(len(s.activation_stats) == 3 for s in stats)
    assert runs["activations"][2][0].grad_norms is None
    assert runs["both"][2][0].grad_norms is not None


@pytest.mark.parametrize("name", sorted(RECORDED_CASES))
def test_resume_with_recording_is_bit_for_bit(name):
    training, activation, dtype = RECORDED_CASES[name]
    record = {"activations": True, "grad_norms": True}
    X, Y = moons(n=80, seed=3)
    whole = recorded_run(training, activation, dtype, record, X, Y)
    expected = [s.to_point() for s in whole.epochs()]
    first = recorded_run(training, activation, dtype, record, X, Y)
    seen = []
    for stats in first.epochs():
        seen.append(stats.to_point())
        if stats.epoch == 3:
            break
    second = recorded_run(training, activation, dtype, record, X, Y, init_seed=99)
    second.load_state_bytes(first.state_bytes())
    seen += [s.to_point() for s in second.epochs()]

    def without_seconds(points):
        return [{k: v for k, v in p.items() if k != "seconds"} for p in points]

    assert without_seconds(seen) == without_seconds(expected)
    for a, b in zip(second.net.parameters(), whole.net.parameters(), strict=True):
        assert np.array_equal(a, b)


def test_to_point_is_the_curve_point_shape():
    X, Y = blobs(n=30)
    config = TrainingConfig.from_spec(
        {"epochs": 1, "record": {"grad_norms": True, "activations": True}}
    )
    net = network_from_spec(
        {
            "layers": [{"units": 3, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        2,
        2,
        rng=np.random.default_rng(0),
    )
    (stats,) = list(Trainer(net, X, Y, config).epochs())
    point = stats.to_point()
    assert set(point) == {
        "epoch",
        "train_loss",
        "val_loss",
        "train_accuracy",
        "val_accuracy",
        "learning_rate",
        "grad_norms",
        "activation_stats",
        "seconds",
    }
    assert point["grad_norms"] == {"D": stats.grad_norms, "update_ratio": stats.update_ratios}
    assert point["activation_stats"] == stats.activation_stats
    assert set(point["activation_stats"][0]) == {
        "layer",
        "dead_fraction",
        "saturated_fraction",
        "mean",
        "std",
    }


def test_record_activations_comes_from_the_spec_and_defaults_off():
    assert TrainingConfig.from_spec({}).record_activations is False
    assert TrainingConfig.from_spec({"record": {"activations": True}}).record_activations
    assert TrainingConfig.from_spec({"record": {"grad_norms": True}}).record_activations is False
