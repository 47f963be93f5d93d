"""Compute budgets of the synchronous endpoints and a job's memory (issue 11).

The findings: ``/backprop/gradient-check`` with thousands of one-unit layers ran 30 s
until the server killed it; ``predict`` had no row cap (25,000 rows against an 8192-unit
model: 1.7 GB); a job's activation memory (rows × widest layer) had no limit. Each
request here gets its 4xx naming the limit, before any of that is allocated.
"""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest

from service import budgets
from service.app import create_app
from service.config import Limits
from service.timeutil import utcnow
from tests.support.hostile import assert_problem

API = "/api/v1"
MB = 1024 * 1024


def backprop_body(hidden: list[int], m: int, n_in: int = 2) -> dict:
    rng = np.random.default_rng(0)
    return {
        "network": {
            "layers": [{"units": u, "activation": "tanh"} for u in hidden],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "X": rng.normal(size=(m, n_in)).round(3).tolist(),
        "y": [i % 2 for i in range(m)],
    }


@pytest.mark.parametrize("path", ["/backprop/gradient-check", "/backprop/trace"])
def test_thousands_of_one_unit_layers_are_refused(client, auth, row_counts, path):
    before = row_counts()
    body = backprop_body([1] * 3000, m=2)
    problem = assert_problem(
        client.post(API + path, json=body, headers=auth), 422, ["body", "network", "layers"]
    )
    assert "DELTAFLOW_MAX_LAYERS" in problem["detail"]
    assert row_counts() == before
    assert client.get("/healthz").status_code == 200


def test_wide_layers_are_refused_on_the_backprop_endpoints(client, auth):
    body = backprop_body([10_000], m=2)
    problem = assert_problem(
        client.post(API + "/backprop/trace", json=body, headers=auth),
        422,
        ["body", "network", "layers", 0, "units"],
    )
    assert "DELTAFLOW_MAX_UNITS" in problem["detail"]


def test_a_gradient_check_over_the_work_budget_is_a_413(client, auth):
    # Under the parameter (5000) and example (256) limits, but 2 x 4403^2 x 256 multiply-adds
    # (about 3 s of one core here) is over the 4e9 work budget.
    body = backprop_body([55, 55], m=256, n_in=20)
    problem = assert_problem(
        client.post(API + "/backprop/gradient-check", json=body, headers=auth), 413
    )
    assert "DELTAFLOW_MAX_GRADCHECK_WORK" in problem["detail"]


def test_the_trace_work_budget_is_configurable(settings, make_key):
    limits = dataclasses.replace(settings.limits, trace_work=1000)
    app = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    auth = {"Authorization": f"Bearer {make_key()}"}
    response = app.test_client().post(
        API + "/backprop/trace", json=backprop_body([4], m=40), headers=auth
    )
    problem = assert_problem(response, 413)
    assert "DELTAFLOW_MAX_TRACE_WORK" in problem["detail"]
    app.extensions["deltaflow"].engine.dispose()


def test_small_backprop_requests_still_answer(client, auth):
    body = backprop_body([3], m=4)
    assert client.post(API + "/backprop/gradient-check", json=body, headers=auth).status_code == 200
    assert client.post(API + "/backprop/trace", json=body, headers=auth).status_code == 200


@pytest.mark.parametrize("epsilon", [5e-324, 1e-300, 9e-11])
def test_a_gradient_check_epsilon_too_small_to_differ_is_a_422(client, auth, epsilon):
    # θ ± ε == θ for weights of order one: the "numerical gradient" would be all zeros.
    body = {**backprop_body([3], 4), "epsilon": epsilon}
    response = client.post(API + "/backprop/gradient-check", json=body, headers=auth)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    assert response.get_json()["errors"][0]["loc"] == ["body", "epsilon"]
    body["epsilon"] = 1e-10
    assert client.post(API + "/backprop/gradient-check", json=body, headers=auth).status_code == 200


# --- predict ----------------------------------------------------------------------------


@pytest.fixture
def wide_model(client, auth, spec, set_job, store_model):
    """A succeeded 2 -> 8192 -> 2 classifier (the finding's 8192-unit model)."""
    job_id = client.post(f"{API}/jobs", json=spec, headers=auth).get_json()["id"]
    rng = np.random.default_rng(0)
    W1, b1 = rng.normal(size=(2, 8192)) * 0.01, np.zeros(8192)
    W2, b2 = rng.normal(size=(8192, 2)) * 0.01, np.zeros(2)
    store_model(
        job_id, [W1, W2], [b1, b2], layer_sizes=[2, 8192, 2], activations=["tanh", "softmax"],
        loss="cross_entropy", dtype="float64", task="classification", classes=[0, 1],
        standardization=None,
    )  # fmt: skip
    set_job(job_id, status="succeeded", finished_at=utcnow())
    return job_id


def test_predict_has_a_row_cap(client, auth, wide_model):
    # The finding: 25,000 rows against an 8192-unit model took 1.7 GB.
    X = [[0.5, -0.5]] * 25_000
    url = f"{API}/jobs/{wide_model}/predict"
    problem = assert_problem(client.post(url, json={"X": X}, headers=auth), 413, ["body", "X"])
    assert "DELTAFLOW_MAX_PREDICT_ROWS" in problem["detail"]


def test_predict_runs_in_chunks_within_its_budget(client, auth, wide_model):
    # 5,000 rows x 8192 units would be a 328 MB activation in one pass; in chunks of
    # predict_chunk_values (4M values, 32 MB) the request's peak stays far below that.
    X = np.random.default_rng(1).normal(size=(5000, 2)).round(3).tolist()
    url = f"{API}/jobs/{wide_model}/predict"
    tracemalloc.start()
    try:
        response = client.post(url, json={"X": X}, headers=auth)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["predictions"]) == 5000
    assert peak < 150 * MB, peak


def test_predict_answers_equal_one_pass(
    client, auth, set_job, store_model, spec, settings, make_key
):
    limits = dataclasses.replace(settings.limits, predict_chunk_values=7)  # 2 rows a chunk
    app = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    job_id = client.post(f"{API}/jobs", json=spec, headers=auth).get_json()["id"]
    W, b = np.array([[2.0, -1.0, 0.0], [0.0, 1.0, -2.0]]), np.zeros(3)
    store_model(
        job_id, [W], [b], layer_sizes=[2, 3], activations=["softmax"], loss="cross_entropy",
        dtype="float64", task="classification", classes=["a", "b", "c"], standardization=None,
    )  # fmt: skip
    set_job(job_id, status="succeeded")
    X = np.random.default_rng(2).normal(size=(9, 2))
    body = app.test_client().post(
        f"{API}/jobs/{job_id}/predict", json={"X": X.tolist()}, headers=auth
    )
    logits = X @ W
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(body.get_json()["probabilities"], expected)
    app.extensions["deltaflow"].engine.dispose()


# --- a job's memory ---------------------------------------------------------------------


def test_a_job_whose_activations_exceed_the_memory_limit_is_refused(client, auth, spec, row_counts):
    before = row_counts()
    spec["network"]["layers"] = [{"units": 8192, "activation": "relu"}]
    spec["dataset"] = {"generator": "spirals", "n_samples": 100_000}
    spec["training"]["batch_size"] = None  # full batch: 100,000 rows x 8192 units
    problem = assert_problem(
        client.post(f"{API}/jobs", json=spec, headers=auth), 422, ["body", "training", "batch_size"]
    )
    assert "DELTAFLOW_MAX_JOB_MEMORY_BYTES" in problem["detail"]
    assert row_counts() == before
    spec["training"]["batch_size"] = 64  # the same job in batches fits
    assert client.post(f"{API}/jobs", json=spec, headers=auth).status_code == 202


def test_a_batch_with_one_job_over_the_memory_limit_is_refused_whole(
    client, auth, spec, row_counts
):
    before = row_counts()
    spec["network"]["layers"] = [{"units": 8192, "activation": "relu"}]
    spec["dataset"] = {"generator": "spirals", "n_samples": 100_000}
    spec["training"]["batch_size"] = 64
    batch = {"name": "mem", "base": spec, "grid": {"training.batch_size": [64, None]}}
    response = client.post(f"{API}/batches", json=batch, headers=auth)
    problem = assert_problem(response, 422)
    assert "DELTAFLOW_MAX_JOB_MEMORY_BYTES" in problem["detail"]
    assert row_counts() == before


def test_the_memory_estimate_counts_data_batch_and_parameters():
    sizes = [2, 8192, 3]
    full = budgets.job_peak_bytes(sizes, 100_000, None, 8)
    batched = budgets.job_peak_bytes(sizes, 100_000, 64, 8)
    assert full > Limits().job_memory_bytes > batched
    assert budgets.job_peak_bytes(sizes, 100_000, 64, 4) < batched
