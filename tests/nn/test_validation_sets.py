"""The validation examples: a stratified split, and a validation set of one's own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worker.nn import Trainer, TrainingConfig, network_from_spec
from worker.nn.examples import split_validation

NET = {
    "layers": [{"units": 6, "activation": "tanh"}],
    "output": {"activation": "softmax"},
    "loss": "cross_entropy",
}


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[labels]


def imbalanced(n: int = 100, rare: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n - rare, int), np.ones(rare, int)]
    rng.shuffle(labels)
    X = rng.normal(size=(n, 2)) + labels[:, None]
    return X, one_hot(labels, 2), labels


@pytest.mark.parametrize("seed", range(20))
def test_a_stratified_split_keeps_each_class_share(seed):
    X, Y, labels = imbalanced()
    _, Y_train, _, Y_val = split_validation(X, Y, 0.2, np.random.default_rng(seed), labels)
    assert Y_val.sum(axis=0).tolist() == [18, 2]  # 20 % of 90 and of 10
    assert Y_train.sum(axis=0).tolist() == [72, 8]


def test_an_unstratified_split_can_miss_a_rare_class():
    X, Y, labels = imbalanced(n=50, rare=3)
    rare_in_val = {
        int(split_validation(X, Y, 0.2, np.random.default_rng(s))[3][:, 1].sum()) for s in range(50)
    }
    assert 0 in rare_in_val  # what stratifying prevents
    stratified = {
        int(split_validation(X, Y, 0.2, np.random.default_rng(s), labels)[3][:, 1].sum())
        for s in range(50)
    }
    assert stratified == {1}  # round(3 * 10 / 50) with the largest remainder


def test_the_split_size_and_order_are_kept_with_uneven_shares():
    labels = np.array([0] * 7 + [1] * 5 + [2] * 3)
    X = np.arange(15.0)[:, None]
    X_train, _, X_val, _ = split_validation(
        X, one_hot(labels, 3), 0.4, np.random.default_rng(1), labels
    )
    assert len(X_val) == 6
    assert sorted(np.r_[X_train[:, 0], X_val[:, 0]].tolist()) == list(range(15))
    assert np.all(np.diff(X_val[:, 0]) > 0)  # original order kept
    assert np.bincount(labels[X_val[:, 0].astype(int)], minlength=3).tolist() in (
        [3, 2, 1],
        [2, 2, 2],
        [3, 1, 2],
    )


def test_the_trainer_stratifies_only_when_asked():
    X, Y, labels = imbalanced(n=50, rare=3, seed=1)
    config = TrainingConfig.from_spec({"epochs": 1}, validation_split=0.2)
    net = network_from_spec(NET, 2, 2, rng=np.random.default_rng(0))
    for seed in range(30):
        asked = dataclasses.replace(config, seed=seed, stratify=True)
        assert Trainer(net, X, Y, asked).Y_val[:, 1].sum() == 1


def test_a_validation_set_of_ones_own_is_used_whole_and_nothing_is_split_off():
    X, Y, _ = imbalanced(seed=2)
    X_val, Y_val, _ = imbalanced(n=30, rare=15, seed=3)
    net = network_from_spec(NET, 2, 2, rng=np.random.default_rng(0))
    config = TrainingConfig.from_spec({"epochs": 5, "optimizer": {"name": "adam"}})
    trainer = Trainer(net, X, Y, config, validation=(X_val, Y_val))
    assert trainer.X_train.shape == (100, 2)
    np.testing.assert_array_equal(trainer.X_val, X_val)
    *_, last = trainer.epochs()
    probabilities = net.forward(X_val)
    accuracy = np.mean(probabilities.argmax(axis=1) == Y_val.argmax(axis=1))
    assert last.val_accuracy == pytest.approx(accuracy)
