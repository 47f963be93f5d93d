"""Everyday use through the client, on a real API and worker: a two-class problem on one
sigmoid unit, a dataset deleted once its jobs have finished."""

from __future__ import annotations

import numpy as np
import pytest

from deltaflow_client import Client, DeltaflowError

pytestmark = [pytest.mark.integration]

WAIT = 120.0  # a safety net for a stuck job, never a measurement


@pytest.fixture(scope="module")
def client(service):
    with Client(service.url, service.key) as client:
        yield client


def rings(n: int = 60, seed: int = 0) -> tuple[list[list[float]], list[str]]:
    """Two rings, labels "in" and "out" (sorted: "in" is the first class)."""
    rng = np.random.default_rng(seed)
    radius = np.r_[rng.normal(1.0, 0.1, n // 2), rng.normal(2.0, 0.1, n - n // 2)]
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
    return X.round(4).tolist(), ["in"] * (n // 2) + ["out"] * (n - n // 2)


def rings_job(dataset: dict, units: int | None, **dataset_options) -> dict:
    output = {"activation": "sigmoid", **({"units": units} if units else {})}
    return {
        "network": {
            "layers": [{"units": 8, "activation": "tanh"}],
            "output": output,
            "loss": "binary_cross_entropy",
        },
        "dataset": {"id": dataset["id"], "standardize": True, **dataset_options},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 150},
    }


def test_two_classes_train_and_predict_on_one_sigmoid_unit(client):
    X, y = rings()
    dataset = client.upload_dataset((X, y), name="rings-one-unit", task="classification")
    job = client.wait(client.submit_job(rings_job(dataset, 1))["id"], progress=False, timeout=WAIT)
    assert job["status"] == "succeeded", job
    assert job["metrics"]["train_accuracy"] >= 0.95

    model = client.model(job["id"])
    assert model["layer_sizes"] == [2, 8, 1]
    assert np.shape(model["theta"][-1]) == (1, 9)
    assert model["classes"] == ["in", "out"]
    answer = client.predict(job["id"], [[0.0, 1.0], [2.0, 0.0]])
    assert answer["predictions"] == ["in", "out"]
    probabilities = np.asarray(answer["probabilities"])
    assert probabilities.shape == (2, 2)  # one per class, as with two units
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0, 0] > 0.5
    assert probabilities[1, 1] > 0.5


def test_a_dataset_is_deleted_after_its_jobs_finished_and_they_stay_readable(client):
    X, y = rings(seed=1)
    dataset = client.upload_dataset((X, y), name="rings-deleted", task="classification")
    job = client.wait(
        client.submit_job(rings_job(dataset, None))["id"], progress=False, timeout=WAIT
    )
    assert job["status"] == "succeeded", job

    client.delete_dataset(dataset["id"])
    with pytest.raises(DeltaflowError) as gone:
        client.dataset(dataset["id"])
    assert gone.value.status == 404
    kept = client.get_job(job["id"])
    assert kept["status"] == "succeeded"
    assert kept["dataset_id"] is None
    assert len(client.curve(job["id"])) == 150
    assert client.model(job["id"])["classes"] == ["in", "out"]
    assert client.predict(job["id"], [[0.0, 1.0]])["predictions"] == ["in"]


def test_a_job_validates_on_a_named_set_with_classes_of_its_own(client):
    X, y = rings(n=80, seed=2)
    train = client.upload_dataset((X, y), name="rings-train", task="classification")
    X_val, _ = rings(n=40, seed=3)
    X_val = X_val[20:]  # only the outer ring: its one class "out" is the training set's second
    held_out = client.upload_dataset((X_val, ["out"] * 19 + ["in"]), name="rings-val")
    assert held_out["classes"] == ["in", "out"]
    one_class = client.upload_dataset((X_val[:10], ["out"] * 9 + ["in"]), name="rings-val-2")
    for validation in (held_out, one_class):
        spec = rings_job(train, None, validation={"id": validation["id"]})
        job = client.wait(client.submit_job(spec)["id"], progress=False, timeout=WAIT)
        assert job["status"] == "succeeded", job
        n_val = validation["n_samples"]
        labels = ["out"] * (n_val - 1) + ["in"]
        X_seen = X_val[:n_val]
        predicted = client.predict(job["id"], X_seen)["predictions"]
        accuracy = np.mean([p == t for p, t in zip(predicted, labels, strict=True)])
        # The whole training set trained (no split), the named set was the validation.
        assert job["metrics"]["val_accuracy"] == pytest.approx(accuracy)
        assert client.model(job["id"])["classes"] == ["in", "out"]
