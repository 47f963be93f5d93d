"""Built-in generators: deterministic per seed, shapes as described, every class present."""

from __future__ import annotations

import numpy as np
import pytest

from service import generators
from service.schemas.names import GENERATORS


@pytest.mark.parametrize("name", GENERATORS)
def test_same_spec_same_bits_other_seed_other_data(name):
    spec = {"generator": name, "n_samples": 90, "noise": 0.2, "seed": 4}
    a, b = generators.generate(spec), generators.generate(dict(spec))
    assert a.X.tobytes() == b.X.tobytes()
    assert a.y.tobytes() == b.y.tobytes()
    other = generators.generate({**spec, "seed": 5})
    assert not np.array_equal(a.X, other.X)


@pytest.mark.parametrize("name", GENERATORS)
def test_describe_matches_what_generate_returns(name):
    spec = {"generator": name, "n_samples": 61}
    task, n_features, n_outputs = generators.describe(spec)
    arrays = generators.generate(spec)
    assert arrays.task == task
    assert arrays.X.shape == (61, n_features)
    assert arrays.X.dtype == np.float64
    assert arrays.n_outputs == n_outputs
    assert np.isfinite(arrays.X).all()
    if task == "classification":
        assert arrays.y.dtype == np.int64
        assert set(arrays.y.tolist()) == set(range(n_outputs))
        assert arrays.classes == list(range(n_outputs))
    else:
        assert arrays.y.shape == (61,)
        assert arrays.classes is None


def test_spirals_and_gaussians_take_their_sizes_from_the_spec():
    spirals = generators.generate({"generator": "spirals", "n_classes": 5, "n_samples": 100})
    assert spirals.n_outputs == 5
    assert np.bincount(spirals.y).tolist() == [20] * 5
    blobs = generators.generate(
        {"generator": "gaussians", "n_classes": 4, "n_features": 7, "n_samples": 40}
    )
    assert blobs.X.shape == (40, 7)


def test_rows_are_shuffled_so_a_tail_split_sees_every_class():
    arrays = generators.generate({"generator": "spirals", "n_samples": 300, "n_classes": 3})
    tail = arrays.y[-60:]
    assert set(tail.tolist()) == {0, 1, 2}


def test_sine_follows_the_sine():
    arrays = generators.generate({"generator": "sine", "n_samples": 200, "noise": 0.0})
    assert np.allclose(arrays.y, np.sin(arrays.X[:, 0]))


def test_plane_is_linear_without_noise():
    arrays = generators.generate(
        {"generator": "plane", "n_samples": 50, "n_features": 3, "noise": 0}
    )
    design = np.column_stack([arrays.X, np.ones(50)])
    coef, residual, *_ = np.linalg.lstsq(design, arrays.y, rcond=None)
    assert np.allclose(design @ coef, arrays.y)


def test_the_dataset_options_in_a_stored_spec_are_ignored_by_the_generator():
    plain = generators.generate({"generator": "moons", "n_samples": 20})
    with_options = generators.generate(
        {"generator": "moons", "n_samples": 20, "validation_split": 0.2, "standardize": True}
    )
    assert np.array_equal(plain.X, with_options.X)
