"""Diagnostics: real training runs that must raise each finding, healthy runs that must not.

Every sick run here is a real run of the engine with ``record.grad_norms`` and
``record.activations`` on, its points taken through ``EpochStats.to_point()`` (the
curve-point shape the API serves), and diagnosed the way the API will. A healthy run may
raise ``info`` findings but no warning and no error: a false alarm fails the test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.toy_data import blobs, circles, moons, sine, spirals
from worker.nn import NonFiniteError, Trainer, TrainingConfig, network_from_spec
from worker.nn.diagnostics import CODES, RunContext, diagnose

RECORD = {"grad_norms": True, "activations": True}


def net_spec(hidden, activation, output="softmax", loss="cross_entropy", init="glorot"):
    return {
        "layers": [{"units": u, "activation": activation} for u in hidden],
        "output": {"activation": output},
        "loss": loss,
        "init": {"scheme": init},
    }


def diagnosed_run(network, X, Y, training, validation_split=0.2, adjust=None, record=RECORD):
    """Train for real, recording; return (findings, points, error) as the API would see them."""
    regression = network["loss"] == "mse"
    net = network_from_spec(network, X.shape[1], Y.shape[1], rng=np.random.default_rng(0))
    if adjust is not None:
        adjust(net)
    config = TrainingConfig.from_spec(
        {**training, "record": record},
        validation_split=validation_split,
        classification=not regression,
    )
    points, error = [], None
    try:
        for stats in Trainer(net, X, Y, config).epochs():
            points.append(stats.to_point())
    except NonFiniteError as exc:  # recorded by the worker as the job's error
        error = {"type": "non_finite", "message": str(exc), "epoch": exc.epoch}
    context = RunContext.from_spec(
        {"network": network, "training": training},
        task="regression" if regression else "classification",
        n_classes=None if regression else max(2, Y.shape[1]),
    )
    # Through JSON and back, as the API stores and serves them.
    points = json.loads(json.dumps(points))
    return diagnose(points, context, error), points, error


def by_code(findings, code):
    return [f for f in findings if f["code"] == code]


def assert_well_formed(findings):
    for f in findings:
        assert set(f) == {"code", "severity", "layer", "epoch", "message", "evidence"}
        assert f["code"] in CODES
        assert f["severity"] in {"error", "warning", "info"}
        assert f["message"].endswith(".")
        json.dumps(f, allow_nan=False)  # strict JSON: no NaN or inf in the evidence
    order = {"error": 0, "warning": 1, "info": 2}
    assert [order[f["severity"]] for f in findings] == sorted(
        order[f["severity"]] for f in findings
    )


def scaled(factor=1.0, hidden_bias=None):
    def adjust(net):
        for W in net.weights:
            W *= factor
        if hidden_bias is not None:
            for b in net.biases[:-1]:
                b[...] = hidden_bias

    return adjust


# ------------------------------------------------------------------ sick runs


@pytest.mark.parametrize("adjust", [None, scaled(0.1)], ids=["glorot", "tiny init"])
def test_a_deep_sigmoid_network_has_vanishing_gradients(adjust):
    X, Y = spirals()
    findings, points, _ = diagnosed_run(
        net_spec((16,) * 6, "sigmoid"),
        X,
        Y,
        {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 20},
        adjust=adjust,
    )
    assert_well_formed(findings)
    (vanishing,) = by_code(findings, "vanishing_gradients")
    assert vanishing["severity"] == "warning"
    assert vanishing["layer"] == 1
    assert vanishing["epoch"] == 1
    ratios = vanishing["evidence"]["ratios_to_output_layer"]
    assert ratios[0] < 1e-2
    assert ratios == sorted(ratios)  # δ shrinks layer by layer toward the input
    assert "relu" in vanishing["message"]
    # The same network without recorded gradients: that rule says nothing.
    quiet, _, _ = diagnosed_run(
        net_spec((16,) * 6, "sigmoid"),
        X,
        Y,
        {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 20},
        adjust=adjust,
        record={"activations": True},
    )
    assert not by_code(quiet, "vanishing_gradients")


def test_a_blow_up_is_diverged_with_exploding_gradients():
    X, Y = sine()
    training = {"optimizer": {"name": "gd", "learning_rate": 0.05}, "epochs": 60}
    findings, points, error = diagnosed_run(
        net_spec((16, 16), "relu", "identity", "mse", "he"), X * 10, Y * 10, training
    )
    assert_well_formed(findings)
    assert error is not None
    assert findings[0]["code"] == "diverged"
    assert findings[0]["severity"] == "error"
    assert findings[0]["epoch"] == error["epoch"]
    assert "0.005" in findings[0]["message"]  # a tenth of the rate, as a number to try
    (exploding,) = by_code(findings, "exploding_gradients")
    assert exploding["severity"] == "warning"
    assert exploding["evidence"]["growth"] >= 1e2
    assert exploding["epoch"] <= len(points)
    assert not by_code(findings, "learning_rate_too_high")  # diverged already says it


def test_a_large_negative_bias_kills_relu_units():
    X, Y = moons()
    findings, _, _ = diagnosed_run(
        net_spec((32, 32), "relu", init="he"),
        X,
        Y,
        {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 30, "batch_size": 32},
        adjust=scaled(1.0, hidden_bias=-3.0),
    )
    assert_well_formed(findings)
    dead = {f["layer"]: f for f in by_code(findings, "dead_relu")}
    assert dead[2]["severity"] == "error"  # the whole second layer
    assert dead[2]["evidence"]["dead_fraction"] == 1.0
    assert dead[1]["severity"] == "warning"
    assert dead[1]["evidence"]["dead_fraction"] >= 0.5
    assert dead[1]["epoch"] == 1
    assert "leaky_relu" in dead[1]["message"]
    # No gradient reaches the first layer through a dead one.
    assert by_code(findings, "vanishing_gradients")[0]["layer"] == 1
    # The poor fit is reported, but as a consequence, not with advice of its own.
    assert by_code(findings, "underfitting")[0]["severity"] == "info"


def test_unscaled_inputs_saturate_tanh_units():
    X, Y = moons()
    findings, _, _ = diagnosed_run(
        net_spec((32,), "tanh"),
        X * 30,
        Y,
        {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 20, "batch_size": 32},
    )
    assert_well_formed(findings)
    (saturated,) = by_code(findings, "saturated_units")
    assert saturated["severity"] == "warning"
    assert saturated["layer"] == 1
    assert saturated["evidence"]["early"] >= 0.5
    assert "Standardize" in saturated["message"]


def test_a_learning_rate_that_overshoots_is_too_high():
    X, Y = spirals()
    training = {"optimizer": {"name": "sgd", "learning_rate": 5.0}, "epochs": 60, "batch_size": 32}
    findings, _, _ = diagnosed_run(net_spec((32,), "tanh"), X, Y, training)
    assert_well_formed(findings)
    (too_high,) = by_code(findings, "learning_rate_too_high")
    assert too_high["severity"] == "warning"
    assert too_high["evidence"]["given_back"] >= 0.25
    assert "0.5" in too_high["message"]
    assert not by_code(findings, "diverged")


def test_a_loss_that_blows_up_without_non_finite_numbers_has_diverged():
    X, Y = spirals()
    training = {
        "optimizer": {"name": "momentum", "learning_rate": 1.0},
        "epochs": 40,
        "batch_size": 32,
    }
    findings, _, error = diagnosed_run(net_spec((32, 32), "tanh"), X, Y, training)
    assert error is None
    assert_well_formed(findings)
    (diverged,) = by_code(findings, "diverged")
    assert diverged["severity"] == "error"
    assert diverged["evidence"]["factor"] >= 3


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "gd", "learning_rate": 1e-3}, {"name": "adam", "learning_rate": 1e-5}],
    ids=["gd", "adam"],
)
def test_a_tiny_learning_rate_is_too_low(optimizer):
    X, Y = spirals()
    findings, _, _ = diagnosed_run(
        net_spec((32,), "tanh"), X, Y, {"optimizer": optimizer, "epochs": 60, "batch_size": 32}
    )
    assert_well_formed(findings)
    (too_low,) = by_code(findings, "learning_rate_too_low")
    assert too_low["severity"] == "warning"
    assert too_low["evidence"]["falling_share"] >= 0.9
    assert f"({optimizer['learning_rate']:g})" in too_low["message"]
    assert all(f["severity"] == "info" for f in findings if f is not too_low)


def test_a_big_network_on_a_little_noisy_data_overfits():
    X, Y = moons(n=40, noise=0.35)
    training = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 300}
    network = net_spec((64, 64), "relu", init="he")
    findings, points, _ = diagnosed_run(network, X, Y, training, validation_split=0.5)
    assert_well_formed(findings)
    (overfitting,) = by_code(findings, "overfitting")
    assert overfitting["severity"] == "warning"
    evidence = overfitting["evidence"]
    assert evidence["generalization_loss"] >= 0.1
    assert evidence["end_train_loss"] < 0.1 * evidence["train_loss_at_best"]
    best = min(points, key=lambda p: p["val_loss"])
    assert overfitting["epoch"] == best["epoch"]
    # With early stopping the same curve is only worth a note.
    stopped, _, _ = diagnosed_run(
        network,
        X,
        Y,
        {**training, "early_stopping": {"patience": 50, "min_delta": 0.0}},
        validation_split=0.5,
    )
    assert [f["severity"] for f in by_code(stopped, "overfitting")] == ["info"]


def test_a_linear_model_underfits_spirals():
    X, Y = spirals()
    training = {
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 100,
        "batch_size": 32,
    }
    findings, _, _ = diagnosed_run(net_spec((), "tanh"), X, Y, training)
    assert_well_formed(findings)
    assert [f["code"] for f in findings if f["severity"] != "info"] == ["underfitting"]
    (underfitting,) = by_code(findings, "underfitting")
    assert underfitting["evidence"]["end_train_accuracy"] < 2 / 3
    assert "hidden layers" in underfitting["message"]


# ------------------------------------------------------------------ healthy runs

HEALTHY = {
    "moons, tanh, full-batch gd": (
        net_spec((16,), "tanh"),
        moons,
        {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 300},
    ),
    "moons, relu, sgd": (
        net_spec((16,), "relu", init="he"),
        moons,
        {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 200, "batch_size": 32},
    ),
    "moons, leaky relu, nesterov": (
        net_spec((16, 16), "leaky_relu", init="he"),
        moons,
        {"optimizer": {"name": "nesterov", "learning_rate": 0.05}, "epochs": 150, "batch_size": 16},
    ),
    "circles, sigmoid, Ng's gd with one output": (
        net_spec((8,), "sigmoid", "sigmoid", "binary_cross_entropy", "ng"),
        circles,
        {"optimizer": {"name": "gd", "learning_rate": 2.0}, "epochs": 800},
    ),
    "blobs, logistic regression": (
        net_spec((), "tanh"),
        blobs,
        {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 100},
    ),
    "blobs, sigmoid, noisy sgd": (
        net_spec((8,), "sigmoid"),
        blobs,
        {"optimizer": {"name": "sgd", "learning_rate": 0.5}, "epochs": 60, "batch_size": 16},
    ),
    "spirals, tanh, adam with early stopping": (
        net_spec((32, 32), "tanh"),
        spirals,
        {
            "optimizer": {"name": "adam", "learning_rate": 0.02},
            "epochs": 600,
            "batch_size": 64,
            "early_stopping": {"patience": 30, "min_delta": 0.0},
        },
    ),
    "spirals, relu, adam with l2": (
        net_spec((32, 32), "relu", init="he"),
        spirals,
        {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "epochs": 200,
            "batch_size": 32,
            "l2": 0.01,
        },
    ),
    "spirals, sigmoid, adam": (
        net_spec((32, 32), "sigmoid"),
        spirals,
        {"optimizer": {"name": "adam", "learning_rate": 0.02}, "epochs": 200, "batch_size": 32},
    ),
    "sine regression, tanh, adam": (
        net_spec((32,), "tanh", "identity", "mse"),
        sine,
        {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 300, "batch_size": 32},
    ),
}


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_a_healthy_run_raises_no_warning_or_error(name):
    network, data, training = HEALTHY[name]
    X, Y = data()
    findings, points, error = diagnosed_run(network, X, Y, training)
    assert error is None
    assert_well_formed(findings)
    alarms = [f for f in findings if f["severity"] != "info"]
    assert alarms == [], alarms
    if network["loss"] != "mse":  # it did learn: the rules were not just silent
        assert points[-1]["train_accuracy"] >= 0.85


# ------------------------------------------------------------------ partial and hand-built data


def test_nothing_recorded_means_only_the_curve_is_read():
    X, Y = spirals()
    training = {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 20}
    findings, points, _ = diagnosed_run(net_spec((16,) * 6, "sigmoid"), X, Y, training, record={})
    assert all(p["grad_norms"] is None and p["activation_stats"] is None for p in points)
    assert {f["code"] for f in findings} <= {"underfitting", "learning_rate_too_low", "overfitting"}
    # The API's curve points may lack fields altogether; that is "not recorded" too.
    bare = [{"epoch": p["epoch"], "train_loss": p["train_loss"]} for p in points]
    assert diagnose(bare) == diagnose(bare, RunContext())
    assert diagnose([]) == []


def curve(losses, val=None, accuracy=None, **extra):
    points = []
    for i, loss in enumerate(losses):
        point = {"epoch": i + 1, "train_loss": loss}
        if val is not None:
            point["val_loss"] = val[i]
        if accuracy is not None:
            point["train_accuracy"] = accuracy[i]
        for key, values in extra.items():
            point[key] = values[i]
        points.append(point)
    return points


def test_a_non_finite_job_error_is_divergence_even_without_points():
    error = {"type": "non_finite", "message": "non-finite training loss at epoch 1", "epoch": 1}
    (finding,) = diagnose([], RunContext(learning_rate=3.0), error)
    assert finding["code"] == "diverged"
    assert finding["epoch"] == 1
    assert finding["evidence"]["last_finite_train_loss"] is None
    assert "0.3" in finding["message"]
    assert diagnose([], RunContext(), {"type": "time_limit", "epoch": None}) == []


def test_a_short_or_flat_curve_raises_nothing():
    assert diagnose(curve([1.0, 0.9, 0.8])) == []
    assert diagnose(curve([0.5] * 30)) == []


def test_large_steps_with_a_fine_loss_are_only_info():
    losses = [1.0 / (1 + e) for e in range(20)]
    grads = [{"D": [1.0, 1.0], "update_ratio": [0.3, 0.2]}] * 20
    (finding,) = diagnose(curve(losses, grad_norms=grads))
    assert finding["code"] == "learning_rate_too_high"
    assert finding["severity"] == "info"
    assert finding["layer"] == 1


def test_vanishing_gradients_that_adam_compensates_are_only_info():
    losses = [1.0 / (1 + e) for e in range(20)]
    grads = [{"D": [1e-5, 1e-3, 1.0], "update_ratio": [2e-3, 1e-3, 1e-3]}] * 20
    findings = diagnose(curve(losses, grad_norms=grads), RunContext(optimizer="adam"))
    (finding,) = by_code(findings, "vanishing_gradients")
    assert finding["severity"] == "info"
    assert "adam" in finding["message"]


def test_gradients_growing_toward_the_input_explode_across_depth():
    losses = [1.0 / (1 + e) for e in range(20)]
    grads = [{"D": [500.0, 20.0, 1.0], "update_ratio": [1e-3, 1e-3, 1e-3]}] * 20
    (finding,) = by_code(diagnose(curve(losses, grad_norms=grads)), "exploding_gradients")
    assert finding["layer"] == 1
    assert finding["evidence"]["ratios_to_output_layer"] == [500.0, 20.0]


def test_a_non_finite_loss_in_the_points_is_divergence():
    (finding,) = diagnose(curve([1.0, 0.9, float("nan")]))
    assert finding["code"] == "diverged"
    assert finding["epoch"] == 3


def test_late_saturation_of_a_network_that_fits_well_is_only_info():
    stats = [
        [{"layer": 1, "dead_fraction": None, "saturated_fraction": s, "mean": 0.0, "std": 0.9}]
        + [{"layer": 2, "dead_fraction": None, "saturated_fraction": 1.0, "mean": 0.5, "std": 0.5}]
        for s in [0.0] * 10 + [0.8] * 10
    ]
    losses = [1.0 / (1 + e) for e in range(20)]
    accuracy = [0.5 + 0.025 * e for e in range(20)]
    context = RunContext(activations=("tanh", "softmax"), n_classes=2)
    (finding,) = diagnose(curve(losses, accuracy=accuracy, activation_stats=stats), context)
    assert finding["code"] == "saturated_units"
    assert finding["severity"] == "info"
    assert finding["layer"] == 1  # the saturated output layer is never reported
    assert finding["epoch"] == 11
    # The same saturation while accuracy stalls near chance is a warning.
    stalled = [0.55] * 20
    (finding,) = by_code(
        diagnose(curve(losses, accuracy=stalled, activation_stats=stats), context),
        "saturated_units",
    )
    assert finding["severity"] == "warning"


def test_run_context_from_a_job_spec():
    spec = {
        "network": net_spec((8, 4), "relu", init="he"),
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "early_stopping": {"patience": 5},
        },
    }
    context = RunContext.from_spec(spec, task="classification", n_classes=3)
    assert context == RunContext(
        activations=("relu", "relu", "softmax"),
        optimizer="adam",
        learning_rate=0.01,
        task="classification",
        n_classes=3,
        early_stopping=True,
    )
    assert RunContext.from_spec({}) == RunContext()


def test_evidence_stays_strict_json_when_a_ratio_overflows():
    losses = [1.0 / (1 + e) for e in range(20)]
    grads = [{"D": [1e300, 1e-300], "update_ratio": [1e-3, 1e-3]}] * 20
    (finding,) = by_code(diagnose(curve(losses, grad_norms=grads)), "exploding_gradients")
    assert finding["evidence"]["ratios_to_output_layer"] == [None]
    json.dumps(finding, allow_nan=False)
