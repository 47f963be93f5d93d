"""Hostile dataset uploads (issue 11): every reader budgets before it allocates.

Each test sends what a hostile tenant sent, expects its 4xx problem naming the limit or
the field, checks that nothing was stored, and, where the old reader blew up, that the
request's peak Python/numpy allocation (tracemalloc sees numpy's buffers) stays small.
"""

from __future__ import annotations

import dataclasses
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from service.app import create_app
from tests.support.hostile import MB, assert_problem, npy_header, zipped

DATASETS = "/api/v1/datasets"


def upload(client, auth, data: bytes, filename: str):
    part = FileStorage(io.BytesIO(data), filename=filename)
    boundary, body = encode_multipart({"file": part})
    return client.post(
        DATASETS, data=body, headers=auth, content_type=f"multipart/form-data; boundary={boundary}"
    )


def peak_bytes(call):
    """(result, peak bytes allocated while it ran), numpy's buffers included."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def real_npz(**arrays) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.fixture
def unchanged(row_counts, queued_messages):
    before = row_counts(), queued_messages()
    yield
    assert (row_counts(), queued_messages()) == before


# --- labels: JSON -----------------------------------------------------------------------


def test_a_25000_character_label_is_refused_without_allocating(client, auth, unchanged):
    # The finding: 125 KB of JSON, 8 s and 3 GB (numpy widened every label to 25,000).
    n = 5000
    body = {
        "name": "wide",
        "X": [[float(i)] for i in range(n)],
        "y": ["a"] * (n - 1) + ["b" * 25000],
    }
    response, peak = peak_bytes(lambda: client.post(DATASETS, json=body, headers=auth))
    problem = assert_problem(response, 422, ["body", "y"])
    assert "DELTAFLOW_MAX_LABEL_CHARS" in problem["detail"]
    assert peak < 20 * MB, peak


def test_many_distinct_long_labels_cost_their_own_length(client, auth):
    # 200-character labels are allowed; 1000 samples x 200 characters is no blow-up either.
    n = 1001
    labels = [f"{i % 3:0200d}" for i in range(n)]
    body = {"name": "ok", "X": [[float(i)] for i in range(n)], "y": labels}
    response = client.post(DATASETS, json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    assert len(response.get_json()["classes"]) == 3


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (["a", "a\x00", "b"], "NUL"),  # "a" and "a\x00" merged
        ([0, "0", 1], "not a mix"),  # 0 and "0" merged
        (["x\u0085y", "z", "z"], "control character"),
        ([{"a": 1}, 1, 2], "integers or strings"),
        ([1.5, 2, 3], "integers or strings"),
        ([2**70, 1, 2], "64 bits"),
    ],
)
def test_labels_are_one_type_and_plain_text(client, auth, unchanged, labels, words):
    body = {"name": "mixed", "X": [[0.0]] * len(labels), "y": labels}
    problem = assert_problem(client.post(DATASETS, json=body, headers=auth), 422)
    assert problem["errors"][0]["loc"][:2] == ["body", "y"]
    assert words in problem["detail"]


@pytest.mark.parametrize(
    "X",
    [
        [["1" * 100_000], ["2"]],  # a long string where a number belongs
        [[[[1.0]]], [[[2.0]]]],  # deeper than a matrix
        [[1.0, {"a": 1}], [2.0, 3.0]],
        [[1e400], [1.0]],
        [[10**400], [1]],
    ],
)
def test_x_must_be_a_matrix_of_numbers(client, auth, unchanged, X):
    body = {"name": "bad X", "X": X, "y": [0, 1]}
    response = client.post(DATASETS, json=body, headers=auth)
    assert_problem(response, 400 if response.status_code == 400 else 422)


def test_regression_targets_are_bounded_before_allocating(client, auth, unchanged):
    body = {"name": "wide y", "task": "regression", "X": [[0.0], [1.0]], "y": [[0.0] * 5000] * 2}
    problem = assert_problem(client.post(DATASETS, json=body, headers=auth), 422, ["body", "y"])
    assert "DELTAFLOW_MAX_DATASET_FEATURES" in problem["detail"]


# --- CSV --------------------------------------------------------------------------------


def test_csv_with_a_long_label_is_refused_small(client, auth, unchanged):
    # The finding: a 45 KB CSV reached 1.5 GB (20,000 rows, one 25,000-character label).
    rows = ["x,target"] + ["1,a"] * 10_000 + ["2," + "b" * 900]
    data = "\n".join(rows).encode()
    response, peak = peak_bytes(lambda: upload(client, auth, data, "wide.csv"))
    problem = assert_problem(response, 422, ["body", "file", "y"])
    assert "DELTAFLOW_MAX_LABEL_CHARS" in problem["detail"]
    assert peak < 20 * MB, peak


def test_csv_field_over_131072_characters_is_a_422(client, auth, unchanged):
    # The csv module raised its own field-size error, which became a 500.
    data = b"x,target\n1,a\n2," + b"b" * 140_000 + b"\n"
    problem = assert_problem(upload(client, auth, data, "huge.csv"), 422, ["body", "file"])
    assert "line 3" in problem["detail"]


def test_csv_field_over_the_configured_limit_names_it(client, auth, unchanged):
    data = b"x,target\n1,a\n" + b"2" * 2000 + b",b\n"
    problem = assert_problem(upload(client, auth, data, "long.csv"), 422, ["body", "file"])
    assert "DELTAFLOW_MAX_CSV_FIELD_CHARS" in problem["detail"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"x,target\n1,a\x00\n2,b\n", "control character"),
        (b"x,target\n1,\xff\n2,b\n", "UTF-8"),
        (b'x,target\n1,"open\n2,b\n', "2 samples"),  # the quote runs to the end
        (b"x,target\n1,a\n2,a\n", "2 classes"),
    ],
)
def test_csv_garbage_is_a_422(client, auth, unchanged, data, words):
    problem = assert_problem(upload(client, auth, data, "bad.csv"), 422)
    assert problem["errors"][0]["loc"][:2] == ["body", "file"]
    assert words in problem["detail"]


def test_csv_rows_are_counted_as_they_stream(app, settings, make_key, sessions):
    limits = dataclasses.replace(settings.limits, dataset_samples=100)
    small = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    auth = {"Authorization": f"Bearer {make_key()}"}
    data = b"x,target\n" + b"1,0\n2,1\n" * 1000
    problem = assert_problem(upload(small.test_client(), auth, data, "long.csv"), 422)
    assert "DELTAFLOW_MAX_DATASET_SAMPLES" in problem["detail"]
    small.extensions["deltaflow"].engine.dispose()


def test_a_valid_csv_still_reads(client, auth):
    data = b"a,b,target\n1,2,cat\n3,4,dog\n5,6,cat\n"
    response = upload(client, auth, data, "ok.csv")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["classes"] == ["cat", "dog"]


# --- NPZ --------------------------------------------------------------------------------


def test_a_deflated_y_of_millions_is_refused_before_inflating(client, auth, unchanged):
    # The finding: a 1 MB deflated y of 62.5M values inflated to 1 GB before its 422.
    # Here 5M float64 values (40 MB inflated, ~40 KB deflated) with a 2-row X.
    data = zipped(
        {
            "X.npy": real_npz_member(np.zeros((2, 1))),
            "y.npy": (npy_header((5_000_000,)), 8 * 5_000_000),
        }
    )
    assert len(data) < MB
    response, peak = peak_bytes(lambda: upload(client, auth, data, "bomb.npz"))
    assert_problem(response, response.status_code if response.status_code == 413 else 422)
    assert peak < 10 * MB, peak


def real_npz_member(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array)
    return out.getvalue()


@pytest.mark.parametrize(
    ("shape", "field", "words"),
    [
        ((100_000, 100_000, 10), "X", "dimensions"),  # claimed 100 GB, 3-D: was a 500
        ((100_000_000, 10), "X", "DELTAFLOW_MAX_DATASET_SAMPLES"),
        ((1000, 100_000), "X", "DELTAFLOW_MAX_DATASET_FEATURES"),
        ((100_000, 1000), "X", "DELTAFLOW_MAX_DATASET_VALUES"),
    ],
)
def test_absurd_npz_headers_are_refused_from_the_header(
    client, auth, unchanged, shape, field, words
):
    data = zipped({"X.npy": npy_header(shape), "y.npy": real_npz_member(np.zeros(2))})
    response, peak = peak_bytes(lambda: upload(client, auth, data, "liar.npz"))
    problem = assert_problem(response, 422, ["body", "file", field])
    assert words in problem["detail"]
    assert peak < 5 * MB, peak


@pytest.mark.parametrize(
    ("y", "words"),
    [
        (np.array(["a", "b" * 300]), "DELTAFLOW_MAX_LABEL_CHARS"),
        (np.array([b"a", b"b"]), "labels"),
        (np.zeros((2, 2, 2)), "dimensions"),
        (np.array([(1, 2), (3, 4)], dtype="i4,i4"), "records"),
        (np.array(["a", "b\x01"]), "control character"),
    ],
)
def test_npz_y_dtypes_and_labels_are_checked(client, auth, unchanged, y, words):
    data = real_npz(X=np.zeros((2, 1)), y=y)
    problem = assert_problem(upload(client, auth, data, "y.npz"), 422)
    assert words in problem["detail"], problem


def test_npz_member_shorter_than_its_header_is_a_422(client, auth, unchanged):
    data = zipped({"X.npy": npy_header((4, 1)) + bytes(8), "y.npy": real_npz_member(np.arange(4))})
    problem = assert_problem(upload(client, auth, data, "short.npz"), 422, ["body", "file", "X"])
    assert "shorter" in problem["detail"]


def test_npz_exotic_compression_is_refused(client, auth, unchanged):
    data = zipped(
        {"X.npy": real_npz_member(np.zeros((2, 1))), "y.npy": real_npz_member(np.arange(2))},
        method=zipfile.ZIP_BZIP2,
    )
    problem = assert_problem(upload(client, auth, data, "bz.npz"), 422)
    assert "method" in problem["detail"]


def test_npz_inflated_size_and_ratio_are_limited(settings, make_key):
    limits = dataclasses.replace(settings.limits, npz_bytes=3000, npz_compression_ratio=20)
    small = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    client, auth = small.test_client(), {"Authorization": f"Bearer {make_key()}"}
    big = real_npz(X=np.random.default_rng(0).normal(size=(200, 2)), y=np.arange(200) % 2)
    problem = assert_problem(upload(client, auth, big, "big.npz"), 413)
    assert "DELTAFLOW_MAX_NPZ_BYTES" in problem["detail"]
    out = io.BytesIO()
    np.savez_compressed(out, X=np.zeros((1000, 1)), y=np.arange(1000) % 2)
    problem = assert_problem(upload(client, auth, out.getvalue(), "zeros.npz"), 413)
    assert "DELTAFLOW_MAX_NPZ_COMPRESSION_RATIO" in problem["detail"]
    small.extensions["deltaflow"].engine.dispose()


def test_a_valid_npz_still_reads(client, auth):
    data = real_npz(X=np.arange(8, dtype=np.float32).reshape(4, 2), y=np.array(["u", "v"] * 2))
    response = upload(client, auth, data, "ok.npz")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["classes"] == ["u", "v"]
