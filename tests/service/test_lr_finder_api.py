"""POST /api/v1/lr-finder over the Flask test client.

The body is validated like a job spec and bounded like the backprop endpoints; the range
test runs on exactly the training split the job would train on. That the suggestion
trains the network well is the engine's test (tests/nn/test_lr_finder.py) and, through a
real worker, tests/e2e/test_insight_e2e.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from service.app import create_app
from service.build import prepare
from service.datasets import spec_arrays
from service.schemas.insight import MAX_STEPS, LrFinderOut
from service.schemas.spec import JobSpec
from worker.nn.lr_finder import MAX_STEPS as ENGINE_MAX_STEPS
from worker.nn.lr_finder import lr_range_test

FINDER = "/api/v1/lr-finder"
MOONS = {
    "network": {
        "layers": [{"units": 16, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {
        "generator": "moons",
        "n_samples": 200,
        "seed": 4,
        "validation_split": 0.25,
        "standardize": True,
    },
    "training": {"optimizer": {"name": "adam"}, "batch_size": 16, "seed": 2},
}


def body(**changes) -> dict:
    return {**json.loads(json.dumps(MOONS)), "min_lr": 1e-5, "max_lr": 10.0, "steps": 80, **changes}


def assert_problem(response, status: int, loc: list, *words: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["errors"][0]["loc"] == loc, problem
    for word in words:
        assert word in problem["detail"], problem
    return problem


@pytest.fixture
def unchanged(row_counts, queued_messages):
    before = row_counts(), queued_messages()
    yield
    assert (row_counts(), queued_messages()) == before


def limited_client(settings, make_key, **limits):
    app = create_app(
        {
            "settings": dataclasses.replace(
                settings, limits=dataclasses.replace(settings.limits, **limits)
            )
        }
    )
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {make_key('acme')}"
    return app, client


def test_the_range_test_runs_on_the_jobs_training_split_only(client, auth, settings, unchanged):
    response = client.post(FINDER, json=body(), headers=auth)

    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    LrFinderOut.model_validate(answer)  # the documented shape
    assert answer["examples"] == 150  # 200 less the validation quarter
    assert answer["batch_size"] == 16
    assert answer["steps_run"] == len(answer["points"]) >= 10
    assert 1e-5 <= answer["suggested_learning_rate"] <= 10.0
    rates = [p["learning_rate"] for p in answer["points"]]
    assert rates == sorted(rates)

    # The very run the worker would build: same network, split and standardization.
    canonical = JobSpec.model_validate(MOONS).model_dump(mode="json")  # defaults filled in
    run = prepare(canonical, spec_arrays(canonical["dataset"], settings.limits))
    expected = lr_range_test(
        run.net,
        run.trainer.X_train,
        run.trainer.Y_train,
        run.trainer.config,
        min_lr=1e-5,
        max_lr=10.0,
        steps=80,
    )
    expected |= {"examples": 150, "batch_size": 16}
    assert answer == json.loads(json.dumps(expected))


def test_a_stored_dataset_is_resolved_for_the_tenant(client, auth, make_key):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    upload = {"name": "small", "task": "classification", "X": X.tolist(), "y": y.tolist()}
    dataset = client.post("/api/v1/datasets", json=upload, headers=auth).get_json()
    request = body(dataset={"id": dataset["id"]}, steps=20)

    response = client.post(FINDER, json=request, headers=auth)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["examples"] == 60

    other = {"Authorization": f"Bearer {make_key('globex')}"}
    assert_problem(client.post(FINDER, json=request, headers=other), 422, ["body", "dataset", "id"])


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"max_lr": 1e-6}, ["body", "max_lr"]),
        ({"steps": MAX_STEPS + 1}, ["body", "steps"]),
        ({"steps": 1}, ["body", "steps"]),
        ({"min_lr": 0}, ["body", "min_lr"]),
        ({"dataset": {"generator": "moons", "n_samples": 10**7}}, ["body", "dataset", "n_samples"]),
        ({"dataset": {"id": "nope"}}, ["body", "dataset", "id"]),
        ({"network": {**MOONS["network"], "output": {"activation": "sigmoid"}}},
         ["body", "network", "loss"]),
        ({"epochs": 3}, ["body", "epochs"]),
    ],
    ids=["range", "engine steps", "one step", "zero rate", "dataset limit", "unknown dataset",
         "job spec check", "unknown field"],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field(client, auth, unchanged, changes, loc):
    assert_problem(client.post(FINDER, json=body(**changes), headers=auth), 422, loc)


def test_the_schema_ceiling_is_the_engines():
    assert MAX_STEPS == ENGINE_MAX_STEPS


@pytest.mark.parametrize(
    ("limits", "changes", "loc", "name"),
    [
        ({"lr_finder_steps": 50}, {}, ["body", "steps"], "lr_finder_steps"),
        ({"lr_finder_values": 399}, {}, ["body", "dataset"], "lr_finder_values"),
        ({"lr_finder_work": 80 * 16 * 82 - 1}, {}, ["body"], "lr_finder_work"),
    ],
)
def test_over_a_limit_is_413_naming_it(settings, make_key, row_counts, limits, changes, loc, name):
    app, client = limited_client(settings, make_key, **limits)
    before = row_counts()
    response = client.post(FINDER, json=body(**changes))
    assert_problem(response, 413, loc, name)
    assert row_counts() == before
    app.extensions["deltaflow"].engine.dispose()


def test_at_the_limits_it_runs(settings, make_key):
    # moons: 200 examples x 2 features; 2-16-2 has 3·16 + 17·2 = 82 parameters (with biases)
    app, client = limited_client(
        settings, make_key, lr_finder_steps=80, lr_finder_values=400, lr_finder_work=80 * 16 * 82
    )
    response = client.post(FINDER, json=body())
    assert response.status_code == 200, response.get_json()
    app.extensions["deltaflow"].engine.dispose()
