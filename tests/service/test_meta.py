"""``GET /api/v1/meta``: the names the API accepts, the same as the spec allows."""

from __future__ import annotations

import typing

from service.schemas import names


def test_meta_lists_the_declared_names(client, auth):
    response = client.get("/api/v1/meta", headers=auth)
    assert response.status_code == 200
    meta = response.get_json()
    assert meta["statuses"] == [s.value for s in names.JobStatus]
    assert [g["name"] for g in meta["generators"]] == list(names.GENERATORS)
    tasks = {g["name"]: g["task"] for g in meta["generators"]}
    assert {name for name, task in tasks.items() if task == "regression"} == {"plane", "sine"}
    assert meta["optimizers"] == list(typing.get_args(names.OptimizerName))
    assert meta["hidden_activations"] == list(typing.get_args(names.HiddenActivation))
    assert meta["schedulers"] == ["asha", "hyperband", "median", "pbt"]


def test_meta_needs_a_key(client):
    assert client.get("/api/v1/meta").status_code == 401
