"""Sweep expansion: dotted paths, cartesian grids and seeded random sampling."""

from __future__ import annotations

import math

import pytest

from service.sweeps import (
    SweepError,
    expand_grid,
    expand_random,
    flatten,
    parse_path,
    set_path,
    varied_params,
)

BASE = {
    "network": {"layers": [{"units": 8, "activation": "tanh"}], "loss": "cross_entropy"},
    "dataset": {"generator": "xor", "n_samples": 40},
    "training": {"optimizer": {"name": "adam"}, "epochs": 5},
}


def test_parse_path_turns_digit_segments_into_indices():
    assert parse_path("network.layers.0.units") == ("network", "layers", 0, "units")


@pytest.mark.parametrize("bad", ["", ".a", "a..b", "a."])
def test_parse_path_rejects_empty_segments(bad):
    with pytest.raises(ValueError, match="dotted path"):
        parse_path(bad)


def test_set_path_writes_into_lists_and_leaves_the_base_untouched():
    spec = set_path(BASE, "network.layers.0.units", 32)
    assert spec["network"]["layers"][0] == {"units": 32, "activation": "tanh"}
    assert BASE["network"]["layers"][0]["units"] == 8


def test_set_path_creates_missing_object_keys():
    spec = set_path(BASE, "training.early_stopping.patience", 3)
    assert spec["training"]["early_stopping"] == {"patience": 3}
    assert spec["training"]["optimizer"] == {"name": "adam"}


def test_set_path_rejects_an_index_past_the_end():
    with pytest.raises(ValueError, match="out of range"):
        set_path(BASE, "network.layers.1.units", 4)


def test_set_path_rejects_indexing_a_missing_list():
    with pytest.raises(ValueError, match="cannot be indexed"):
        set_path(BASE, "network.blocks.0.units", 4)


def test_set_path_rejects_walking_through_a_scalar():
    with pytest.raises(ValueError, match="not an object or a list"):
        set_path(BASE, "training.epochs.max", 4)


def test_grid_is_the_cartesian_product_with_the_first_path_slowest():
    grid = {"training.optimizer.learning_rate": [0.01, 0.1], "network.layers.0.units": [4, 8, 16]}
    jobs = expand_grid(BASE, grid, max_jobs=100)
    assert [j.params for j in jobs] == [
        {"training.optimizer.learning_rate": lr, "network.layers.0.units": u}
        for lr in (0.01, 0.1)
        for u in (4, 8, 16)
    ]
    for job in jobs:
        assert (
            job.spec["training"]["optimizer"]["learning_rate"]
            == job.params["training.optimizer.learning_rate"]
        )
        assert job.spec["network"]["layers"][0]["units"] == job.params["network.layers.0.units"]
        assert job.spec["dataset"] == BASE["dataset"]


def test_grid_larger_than_the_limit_is_rejected_before_expansion():
    grid = {"training.seed": list(range(1000)), "network.layers.0.units": list(range(1000))}
    with pytest.raises(SweepError, match="1000000 jobs") as err:
        expand_grid(BASE, grid, max_jobs=50)
    assert err.value.loc == ("body", "grid")


@pytest.mark.parametrize(
    ("grid", "loc"),
    [
        ({}, ("body", "grid")),
        ({"training.seed": []}, ("body", "grid", "training.seed")),
        ({"training.seed": 3}, ("body", "grid", "training.seed")),
        ({"a..b": [1]}, ("body", "grid", "a..b")),
        ({"network.layers.5.units": [1]}, ("body", "grid", "network.layers.5.units")),
    ],
)
def test_bad_grids_name_the_offending_path(grid, loc):
    with pytest.raises(SweepError) as err:
        expand_grid(BASE, grid, max_jobs=10)
    assert err.value.loc == loc


RANDOM = {
    "training.optimizer.learning_rate": {"loguniform": [1e-4, 1e-1]},
    "training.l2": {"uniform": [0.0, 0.5]},
    "network.layers.0.units": {"randint": [2, 5]},
    "network.layers.0.activation": {"choice": ["tanh", "relu", "sigmoid"]},
}


def test_random_sampling_is_reproducible_from_its_seed():
    first = expand_random(BASE, RANDOM, samples=20, seed=42, max_jobs=100)
    again = expand_random(BASE, RANDOM, samples=20, seed=42, max_jobs=100)
    other = expand_random(BASE, RANDOM, samples=20, seed=43, max_jobs=100)
    assert [j.params for j in first] == [j.params for j in again]
    assert [j.spec for j in first] == [j.spec for j in again]
    assert [j.params for j in first] != [j.params for j in other]


def test_random_values_stay_within_their_distributions():
    jobs = expand_random(BASE, RANDOM, samples=200, seed=0, max_jobs=1000)
    lrs = [j.params["training.optimizer.learning_rate"] for j in jobs]
    units = [j.params["network.layers.0.units"] for j in jobs]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    # log-uniform: about half the draws fall below the geometric mean of the bounds
    below = sum(lr < math.sqrt(1e-4 * 1e-1) for lr in lrs)
    assert 60 < below < 140
    assert all(0.0 <= j.params["training.l2"] <= 0.5 for j in jobs)
    assert set(units) == {2, 3, 4, 5}  # both ends included
    assert all(isinstance(u, int) for u in units)
    assert {j.params["network.layers.0.activation"] for j in jobs} == {"tanh", "relu", "sigmoid"}
    assert all(
        j.spec["network"]["layers"][0]["units"] == j.params["network.layers.0.units"] for j in jobs
    )


def test_choice_can_pick_whole_structures():
    options = [[{"units": 4}], [{"units": 8}, {"units": 8}]]
    jobs = expand_random(
        BASE, {"network.layers": {"choice": options}}, samples=30, seed=1, max_jobs=100
    )
    assert {len(j.spec["network"]["layers"]) for j in jobs} == {1, 2}
    jobs[0].spec["network"]["layers"][0]["units"] = 999
    assert options[0][0]["units"] == 4
    assert options[1][0]["units"] == 8


@pytest.mark.parametrize(
    ("random", "samples", "seed", "loc"),
    [
        (
            {"training.l2": {"uniform": [1.0, 0.0]}},
            3,
            0,
            ("body", "random", "training.l2", "uniform"),
        ),
        (
            {"training.l2": {"loguniform": [0.0, 1.0]}},
            3,
            0,
            ("body", "random", "training.l2", "loguniform"),
        ),
        (
            {"training.seed": {"randint": [0, 2.5]}},
            3,
            0,
            ("body", "random", "training.seed", "randint"),
        ),
        ({"training.seed": {"choice": []}}, 3, 0, ("body", "random", "training.seed", "choice")),
        ({"training.seed": {"normal": [0, 1]}}, 3, 0, ("body", "random", "training.seed")),
        ({"training.seed": {"randint": [0, 2]}}, 0, 0, ("body", "samples")),
        ({"training.seed": {"randint": [0, 2]}}, 11, 0, ("body", "samples")),
        ({"training.seed": {"randint": [0, 2]}}, 3, -1, ("body", "seed")),
    ],
)
def test_bad_random_definitions_name_the_offending_field(random, samples, seed, loc):
    with pytest.raises(SweepError) as err:
        expand_random(BASE, random, samples=samples, seed=seed, max_jobs=10)
    assert err.value.loc == loc


def test_flatten_indexes_lists_of_objects_and_keeps_arrays_whole():
    leaves = flatten({"network": {"layers": [{"units": 4}]}, "dataset": {"X": [[0, 1]], "y": [1]}})
    assert leaves == {"network.layers.0.units": 4, "dataset.X": [[0, 1]], "dataset.y": [1]}


def test_varied_params_of_an_explicit_job_list():
    a = set_path(BASE, "training.optimizer.learning_rate", 0.1)
    b = set_path(a, "network.layers", [{"units": 8, "activation": "tanh"}, {"units": 3}])
    c = set_path(a, "training.optimizer.learning_rate", 0.2)
    assert varied_params([a, b, c]) == [
        {"training.optimizer.learning_rate": 0.1},
        {"training.optimizer.learning_rate": 0.1, "network.layers.1.units": 3},
        {"training.optimizer.learning_rate": 0.2},
    ]


def test_varied_params_summarise_large_values():
    a = set_path(BASE, "dataset", {"X": [[float(i)] for i in range(100)], "y": [0] * 100})
    b = set_path(BASE, "dataset", {"X": [[float(-i)] for i in range(100)], "y": [0] * 100})
    assert varied_params([a, b]) == [{"dataset.X": "<list of 100>"}, {"dataset.X": "<list of 100>"}]


def test_expanded_specs_share_untouched_subtrees_with_the_base():
    jobs = expand_grid(BASE, {"training.seed": [1, 2]}, max_jobs=10)
    assert all(job.spec["dataset"] is BASE["dataset"] for job in jobs)
    assert all(job.spec["network"] is BASE["network"] for job in jobs)
    assert [job.spec["training"]["seed"] for job in jobs] == [1, 2]
    assert "seed" not in BASE["training"]
    assert jobs[0].spec["training"]["optimizer"] is BASE["training"]["optimizer"]
