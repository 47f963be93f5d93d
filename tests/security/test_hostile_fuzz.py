"""Fuzzing the upload parsers and the JSON budget (issue 11): a fixed number of cases,
derandomized; any exception other than the named 4xx problems fails.

The CSV parser gets text over an alphabet that makes CSV hard (quotes, separators, NUL,
carriage returns, numbers, long runs); the NPZ parser gets zips whose ``.npy`` headers
claim arbitrary dtypes and shapes, truncated or padded data, and valid files with bytes
flipped; ``json_depth`` is held to Python's own parse on nested documents.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.hostile import json_depth
from service.config import Limits
from service.dataset_files import parse_csv, parse_npz
from service.problems import Invalid, PayloadTooLarge

CASES = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = Limits(dataset_samples=500, dataset_features=20, dataset_values=5000, classes=50)
NAMED = (Invalid, PayloadTooLarge)

CSV_ALPHABET = st.sampled_from(
    ["target", "x", ",", "\n", "\r\n", '"', "0", "1", "-2.5", "1e309", "nan", "a", "\x00", " ",
     "é", "\ufeff", ";", "b" * 50]
)  # fmt: skip


@CASES
@given(st.lists(CSV_ALPHABET, max_size=200), st.sampled_from(["classification", "regression"]))
def test_the_csv_parser_answers_4xx_or_arrays(parts, task):
    data = "".join(parts).encode("utf-8")
    try:
        arrays = parse_csv(data, task, LIMITS)
    except NAMED:
        return
    assert arrays.X.shape[0] == arrays.y.shape[0] >= 2


@CASES
@given(st.binary(max_size=400), st.sampled_from(["classification", "regression"]))
def test_the_csv_parser_takes_any_bytes(data, task):
    try:
        parse_csv(b"x,target\n" + data, task, LIMITS)
    except NAMED:
        pass


DESCRS = st.sampled_from(
    ["<f8", "<f4", ">f8", "<i8", "|u1", "|b1", "<U5", "<U300", "|S3", "|O", "<c16", "<M8[s]",
     "<f2", "[('a', '<i4')]", "<V8"]
)  # fmt: skip
SHAPES = st.lists(st.integers(min_value=0, max_value=10**12), max_size=4).map(tuple)


def npy_member(descr: str, shape: tuple[int, ...], payload: bytes) -> bytes:
    out = io.BytesIO()
    header = {"descr": eval(descr) if descr.startswith("[") else descr,  # noqa: S307 (literals)
              "fortran_order": False, "shape": shape}  # fmt: skip
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue() + payload


@CASES
@given(
    DESCRS, SHAPES, st.binary(max_size=200),
    DESCRS, SHAPES, st.binary(max_size=200),
    st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    st.sampled_from(["classification", "regression"]),
)  # fmt: skip
def test_the_npz_parser_budgets_any_header(xd, xs, xp, yd, ys, yp, method, task):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        archive.writestr("X.npy", npy_member(xd, xs, xp))
        archive.writestr("y.npy", npy_member(yd, ys, yp))
    try:
        arrays = parse_npz(out.getvalue(), task, LIMITS)
    except NAMED:
        return
    assert arrays.X.ndim == 2


VALID = io.BytesIO()
np.savez_compressed(VALID, X=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 3)


@CASES
@given(
    st.lists(st.tuples(st.integers(0, len(VALID.getvalue()) - 1), st.integers(0, 255)), max_size=8)
)
def test_the_npz_parser_survives_flipped_bytes(flips):
    data = bytearray(VALID.getvalue())
    for index, value in flips:
        data[index] = value
    try:
        parse_npz(bytes(data), "classification", LIMITS)
    except NAMED:
        pass


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(alphabet='[]{}"\\ab,:'),
    lambda children: st.lists(children) | st.dictionaries(st.text(alphabet='[]{}"\\a'), children),
    max_leaves=40,
)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


@CASES
@given(JSON_VALUES)
def test_json_depth_equals_the_parsed_depth(value):
    assert json_depth(json.dumps(value).encode()) == depth_of(value)
