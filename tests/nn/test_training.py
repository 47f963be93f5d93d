"""The training loop: learning, determinism, bit-for-bit resume, early stopping, blow-ups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.toy_data import blobs, spirals
from worker.nn import (
    EpochStats,
    NonFiniteError,
    SpecError,
    Trainer,
    TrainingConfig,
    network_from_spec,
)


def spec(hidden=(8,), activation="tanh", output="softmax", loss="cross_entropy", init="glorot"):
    return {
        "layers": [{"units": u, "activation": activation} for u in hidden],
        "output": {"activation": output},
        "loss": loss,
        "init": {"scheme": init},
    }


def make(training, X, Y, net_spec=None, validation_split=0.0, dtype="float64", init_seed=0):
    net_spec = net_spec or spec()
    net = network_from_spec(
        net_spec, X.shape[1], Y.shape[1], rng=np.random.default_rng(init_seed), dtype=dtype
    )
    config = TrainingConfig.from_spec(training, validation_split=validation_split)
    return Trainer(net, X, Y, config)


def final_params(trainer):
    return [p.copy() for p in trainer.net.parameters()]


def assert_same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        assert np.array_equal(x, y)


def without_seconds(stats):
    return [{k: v for k, v in s.to_dict().items() if k != "seconds"} for s in stats]


def test_xor_is_learned():
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    trainer = make(
        {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 1000, "seed": 0},
        X,
        Y,
        spec(hidden=(4,), output="sigmoid", loss="binary_cross_entropy", init="ng"),
    )
    stats = list(trainer.epochs())
    assert stats[-1].train_accuracy == 1.0
    assert stats[-1].train_loss < 0.05
    predictions = trainer.net.forward(X)[:, 0] > 0.5
    assert predictions.tolist() == [False, True, True, False]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_spirals_are_learned(dtype):
    X, Y = spirals()
    trainer = make(
        {"optimizer": {"name": "adam", "learning_rate": 0.02}, "epochs": 600, "batch_size": 64},
        X,
        Y,
        spec(hidden=(32, 32)),
        validation_split=0.2,
        dtype=dtype,
    )
    stats = list(trainer.epochs())
    assert stats[-1].train_accuracy >= 0.97
    assert stats[-1].val_accuracy >= 0.9
    assert trainer.stop_reason == "epochs"
    assert all(p.dtype == np.dtype(dtype) for p in trainer.net.parameters())


def test_epoch_stats_fields():
    X, Y = blobs()
    trainer = make(
        {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 3, "batch_size": 16},
        X,
        Y,
        validation_split=0.25,
    )
    stats = list(trainer.epochs())
    assert [s.epoch for s in stats] == [1, 2, 3]
    first = stats[0]
    assert isinstance(first, EpochStats)
    assert first.val_loss is not None
    assert first.val_accuracy is not None
    assert first.learning_rate == 0.1
    assert first.grad_norms is None
    assert first.update_ratios is None
    assert first.seconds >= 0
    assert trainer.X_train.shape == (90, 2)
    assert trainer.X_val.shape == (30, 2)
    assert stats[-1].train_loss < stats[0].train_loss


def test_regression_has_no_accuracy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]])
    net = network_from_spec(spec(output="identity", loss="mse"), 3, 1, rng=rng)
    config = TrainingConfig.from_spec(
        {"optimizer": {"name": "gd", "learning_rate": 0.1}, "epochs": 200},
        validation_split=0.2,
        classification=False,
    )
    stats = list(Trainer(net, X, Y, config).epochs())
    assert stats[-1].train_accuracy is None
    assert stats[-1].val_accuracy is None
    assert stats[-1].train_loss < 0.05 * stats[0].train_loss


def test_same_seed_same_bits_different_seed_different_bits():
    X, Y = blobs()
    training = {
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 5,
        "batch_size": 8,
        "seed": 3,
    }
    a, b = make(training, X, Y), make(training, X, Y)
    stats_a, stats_b = list(a.epochs()), list(b.epochs())
    assert without_seconds(stats_a) == without_seconds(stats_b)
    assert_same_bits(final_params(a), final_params(b))
    c = make({**training, "seed": 4}, X, Y)
    list(c.epochs())
    assert not np.array_equal(final_params(a)[0], final_params(c)[0])


RESUME_CASES = {
    "sgd reshuffling with validation": {
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 12,
        "batch_size": 10,
        "seed": 5,
    },
    "adam mini-batches and l2": {
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 12,
        "batch_size": 16,
        "l2": 0.1,
        "record": {"grad_norms": True},
    },
    "nesterov with step schedule": {
        "optimizer": {"name": "nesterov", "learning_rate": 0.05, "momentum": 0.9},
        "epochs": 12,
        "lr_schedule": {"name": "step", "step_size": 3, "gamma": 0.5},
    },
    "momentum with plateau schedule": {
        "optimizer": {"name": "momentum", "learning_rate": 0.3, "momentum": 0.9},
        "epochs": 30,
        "batch_size": 20,
        "lr_schedule": {"name": "plateau", "factor": 0.5, "patience": 2, "min_delta": 0.01},
    },
    "adam with early stopping": {
        "optimizer": {"name": "adam", "learning_rate": 0.2},
        "epochs": 200,
        "batch_size": 8,
        "early_stopping": {"patience": 3, "min_delta": 0.0},
    },
}


@pytest.mark.parametrize("name", sorted(RESUME_CASES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_resume_equals_uninterrupted_bit_for_bit(name, dtype):
    training = RESUME_CASES[name]
    X, Y = blobs(seed=1)
    whole = make(training, X, Y, validation_split=0.2, dtype=dtype)
    expected = list(whole.epochs())
    assert len(expected) >= 6
    for interrupt_after in (1, 4, len(expected) - 1, len(expected)):
        first = make(training, X, Y, validation_split=0.2, dtype=dtype)
        seen = []
        for stats in first.epochs():
            seen.append(stats)
            if stats.epoch == interrupt_after:
                break
        blob = first.state_bytes()
        # A different initial seed proves the weights come from the blob.
        second = make(training, X, Y, validation_split=0.2, dtype=dtype, init_seed=99)
        second.load_state_bytes(blob)
        seen.extend(second.epochs())
        assert without_seconds(seen) == without_seconds(expected)
        assert_same_bits(final_params(second), final_params(whole))
        assert second.stop_reason == whole.stop_reason
    if "plateau" in name:
        assert expected[-1].learning_rate < expected[0].learning_rate
    if "early" in name:
        assert whole.stop_reason == "early_stopping"


def test_early_stopping_restores_the_best_weights():
    X, Y = blobs(seed=2)
    training = {
        "optimizer": {"name": "adam", "learning_rate": 0.3},
        "epochs": 300,
        "batch_size": 8,
        "seed": 1,
        "early_stopping": {"patience": 4, "min_delta": 0.0},
    }
    stopped = make(training, X, Y, validation_split=0.3)
    stats = list(stopped.epochs())
    assert stopped.stop_reason == "early_stopping"
    assert len(stats) < 300
    val = [s.val_loss for s in stats]
    best_epoch = int(np.argmin(val)) + 1
    assert len(stats) == best_epoch + 4
    # Replaying the same run up to the best epoch gives exactly the restored weights.
    replay = make(
        {**training, "early_stopping": None, "epochs": best_epoch}, X, Y, validation_split=0.3
    )
    list(replay.epochs())
    assert_same_bits(final_params(stopped), final_params(replay))


def test_huge_learning_rate_raises_non_finite_error_naming_the_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * 10
    Y = rng.normal(size=(40, 2)) * 10
    trainer = make(
        {"optimizer": {"name": "gd", "learning_rate": 1e6}, "epochs": 100},
        X,
        Y,
        spec(hidden=(5,), activation="relu", output="identity", loss="mse"),
    )
    seen = []

    def train_to_the_end():
        for stats in trainer.epochs():
            seen.append(stats.epoch)

    with pytest.raises(NonFiniteError) as caught:
        train_to_the_end()
    error = caught.value
    assert error.epoch == len(seen) + 1
    assert f"epoch {error.epoch}" in str(error)
    assert all(math.isfinite(s) for s in seen)


def test_grad_norms_and_update_ratios_of_a_full_batch_step():
    X, Y = blobs(n=30)
    trainer = make(
        {
            "optimizer": {"name": "gd", "learning_rate": 0.5},
            "epochs": 1,
            "l2": 0.2,
            "record": {"grad_norms": True},
        },
        X,
        Y,
        spec(hidden=(4,)),
    )
    before = trainer.net.copy()
    _, dW, db = before.gradients(X, Y, 0.2)
    (stats,) = list(trainer.epochs())
    expected_norms = [math.sqrt(np.sum(w**2) + np.sum(b**2)) for w, b in zip(dW, db, strict=True)]
    np.testing.assert_allclose(stats.grad_norms, expected_norms, rtol=1e-12)
    # One gd step moves Θ by η·D, so the ratio is η‖D‖/‖Θ‖.
    sizes = [math.sqrt(np.sum(t**2)) for t in before.theta()]
    np.testing.assert_allclose(
        stats.update_ratios,
        [0.5 * n / s for n, s in zip(expected_norms, sizes, strict=True)],
        rtol=1e-9,
    )


def test_sgd_defaults_to_mini_batches_and_gd_to_full_batch():
    X, Y = blobs(n=100)
    assert make({"optimizer": {"name": "sgd"}, "epochs": 1}, X, Y).batch_size == 32
    assert make({"optimizer": {"name": "gd"}, "epochs": 1}, X, Y).batch_size == 100
    assert make({"optimizer": {"name": "gd"}, "batch_size": 10}, X, Y).batch_size == 10


def test_state_of_another_network_is_refused():
    X, Y = blobs()
    trainer = make({"optimizer": {"name": "gd"}, "epochs": 2}, X, Y)
    list(trainer.epochs())
    other = make({"optimizer": {"name": "gd"}, "epochs": 2}, X, Y, spec(hidden=(5,)))
    with pytest.raises(ValueError):
        other.load_state_bytes(trainer.state_bytes())


def test_finished_state_yields_nothing_more():
    X, Y = blobs()
    trainer = make({"optimizer": {"name": "gd"}, "epochs": 2}, X, Y)
    list(trainer.epochs())
    again = make({"optimizer": {"name": "gd"}, "epochs": 2}, X, Y)
    again.load_state_bytes(trainer.state_bytes())
    assert list(again.epochs()) == []
    assert again.stop_reason == "epochs"


@pytest.mark.parametrize(
    "training",
    [
        {"optimizer": {"name": "rmsprop"}},
        {"lr_schedule": {"name": "cosine"}},
        {"optimizer": {"name": "gd", "learning_rate": -1.0}},
        {"batch_size": 0},
    ],
)
def test_bad_training_specs_raise_spec_error(training):
    with pytest.raises(SpecError):
        TrainingConfig.from_spec(training)


def test_validation_split_must_leave_training_data():
    X, Y = blobs(n=4)
    with pytest.raises(SpecError):
        TrainingConfig.from_spec({}, validation_split=1.5)
    trainer = make({"epochs": 1}, X, Y, validation_split=0.5)
    assert trainer.X_train.shape[0] == 2
    with pytest.raises(SpecError):
        make({"epochs": 1}, X[:0], Y[:0])


@pytest.mark.parametrize("batch_size", [None, 16])
def test_inputs_replaced_after_construction_are_the_ones_trained_on(batch_size):
    # The worker standardizes trainer.X_train / X_val after the split is drawn.
    X, Y = blobs(n=80, seed=3)
    training = {
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 5,
        "batch_size": batch_size,
        "seed": 2,
    }
    replaced = make(training, X, Y, validation_split=0.25)
    replaced.X_train = replaced.X_train * 2.0 + 1.0
    replaced.X_val = replaced.X_val * 2.0 + 1.0
    direct = make(training, X * 2.0 + 1.0, Y, validation_split=0.25)
    assert without_seconds(list(replaced.epochs())) == without_seconds(list(direct.epochs()))
    assert_same_bits(final_params(replaced), final_params(direct))
    with pytest.raises(ValueError):
        replaced.X_train = X


def test_adopting_a_state_takes_its_weights_and_moments_but_keeps_its_hyperparameters():
    """PBT's exploit: the child continues from the parent's weights, Adam moments, step and
    generator, with its own learning rate and betas; one more epoch is Adam's update with
    the child's settings from exactly the parent's state."""
    X, Y = blobs(seed=3)
    parent_training = {"optimizer": {"name": "adam", "learning_rate": 0.05, "beta1": 0.9},
                       "epochs": 10, "batch_size": 16}  # fmt: skip
    child_training = {"optimizer": {"name": "adam", "learning_rate": 0.01, "beta1": 0.5},
                      "epochs": 10, "batch_size": 16}  # fmt: skip
    parent = make(parent_training, X, Y)
    for stats in parent.epochs():
        if stats.epoch == 4:
            break
    blob = parent.state_bytes()
    child = make(child_training, X, Y, init_seed=99)
    child.adopt_state_bytes(blob)
    assert child.epoch == 4
    assert_same_bits(final_params(child), final_params(parent))
    assert child.optimizer.t == parent.optimizer.t
    for mine, theirs in zip(child.optimizer.m, parent.optimizer.m, strict=True):
        assert_same_bits([mine], [theirs])
    assert (child.optimizer.beta1, child.optimizer.learning_rate) == (0.5, 0.01)
    # The same next epoch from a plain resume with the child's settings set by hand.
    by_hand = make(child_training, X, Y, init_seed=5)
    by_hand.load_state_bytes(blob)
    by_hand.optimizer.beta1 = 0.5
    next_adopted, next_by_hand = next(child.epochs()), next(by_hand.epochs())
    assert next_adopted.learning_rate == 0.01
    assert next_adopted.train_loss == next_by_hand.train_loss
    assert_same_bits(final_params(child), final_params(by_hand))
    # A plain resume would have kept the parent's beta1.
    resumed = make(child_training, X, Y)
    resumed.load_state_bytes(blob)
    assert resumed.optimizer.beta1 == 0.9
