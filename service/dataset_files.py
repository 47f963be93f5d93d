"""Dataset files: the readers of uploads (CSV, NPZ) and the stored NPZ format.

Readers turn bytes into validated ``DatasetArrays`` (422 at ``["body", "file"]`` for a
file that cannot be read); ``pack``/``unpack`` are the content-addressed blob format that
workers load and cache. Kernel code: numpy, no database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import struct
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from service import deadlines
from service.config import Limits, limit_env
from service.dataset_arrays import DatasetArrays, build_arrays, check_size
from service.problems import Invalid, PayloadTooLarge

# Fixed zip timestamps make the packed bytes (and so the sha256) a function of the data only.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
NPZ_MAGIC = b"PK"
# The request's deadline is checked every this many values while a CSV streams (a row
# holds up to DELTAFLOW_MAX_DATASET_FEATURES of them, so rows alone would be too coarse).
CSV_CHECK_VALUES = 1 << 18


def read_upload(filename: str, data: bytes, task: str, limits: Limits) -> DatasetArrays:
    """An uploaded ``.npz`` or ``.csv`` (by name; an unnamed zip is read as NPZ)."""
    name = filename.lower()
    if name.endswith(".npz") or (not name.endswith(".csv") and data.startswith(NPZ_MAGIC)):
        return parse_npz(data, task, limits)
    return parse_csv(data, task, limits)


def read_json(body: dict[str, Any], task: str, limits: Limits) -> DatasetArrays:
    """A JSON upload ``{name, task, X, y}`` (name and task already read)."""
    missing = [field for field in ("X", "y") if field not in body]
    if missing:
        raise Invalid("missing " + ", ".join(missing), [(["body", f], "required") for f in missing])
    unknown = sorted(set(body) - {"name", "task", "X", "y"})
    if unknown:
        raise Invalid.at(["body", unknown[0]], "unknown field")
    # Large arrays skip pydantic: numpy checks shape, type and finiteness far faster.
    return build_arrays(body["X"], body["y"], task, limits)


def parse_csv(data: bytes, task: str, limits: Limits) -> DatasetArrays:
    """A CSV with a header row and a ``target`` column; every other column is a feature.

    Read as a stream: rows, columns and values are counted against the limits as they
    come, every field is at most ``csv_field_chars`` long, and features go straight into
    a float buffer (8 bytes a value), so no row list of the whole file is ever held.
    """
    loc: list[str | int] = ["body", "file"]
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    features = array("d")
    labels: list[str] = []
    header: list[str] | None = None
    target = n_features = 0
    line = 0
    next_check = CSV_CHECK_VALUES
    try:
        for line, row in enumerate(csv.reader(text), start=1):
            if len(features) >= next_check:
                deadlines.check("reading the CSV file")
                next_check += CSV_CHECK_VALUES
            if not row or not any(cell.strip() for cell in row):
                continue
            for cell in row:
                if len(cell) > limits.csv_field_chars:
                    raise Invalid.at(
                        loc,
                        f"line {line}: a field of {len(cell)} characters; at most "
                        f"{limits.csv_field_chars} ({limit_env('csv_field_chars')})",
                    )
            if header is None:
                header = [name.strip() for name in row]
                if "target" not in header:
                    raise Invalid.at(loc, "the CSV header has no 'target' column")
                if len(header) < 2:
                    raise Invalid.at(loc, "the CSV file has no feature columns")
                target, n_features = header.index("target"), len(header) - 1
                check_size(2, n_features, limits, loc)
                continue
            if len(row) != len(header):
                raise Invalid.at(
                    loc, f"line {line}: {len(row)} fields, the header has {len(header)}"
                )
            if len(labels) >= limits.dataset_samples or (
                (len(labels) + 1) * n_features > limits.dataset_values
            ):
                check_size(len(labels) + 1, n_features, limits, loc)
            try:
                features.extend(float(cell) for i, cell in enumerate(row) if i != target)
            except ValueError:
                raise Invalid.at(loc, f"line {line}: a feature is not a number") from None
            labels.append(row[target].strip())
    except UnicodeDecodeError:
        raise Invalid.at(loc, "the CSV file is not UTF-8 text") from None
    except csv.Error as exc:
        raise Invalid.at(loc, f"line {line + 1}: not readable as CSV ({exc})") from None
    if header is None:
        raise Invalid.at(loc, "the CSV file is empty")
    check_size(len(labels), n_features, limits, loc)
    X = np.frombuffer(features, dtype=np.float64).reshape(len(labels), n_features)
    y = _csv_targets(labels, task, loc)
    return build_arrays(X, y, task, limits, loc=loc)


def _csv_targets(labels: list[str], task: str, loc: list[str | int]) -> np.ndarray | list[str]:
    """Numbers when every target parses as one, else the labels as strings (one type)."""
    if any(label == "" for label in labels):
        raise Invalid.at(loc, "a target value is empty")
    try:
        return np.asarray([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        if task == "regression":
            raise Invalid.at(loc, "regression targets must be numbers") from None
        return labels


# dtypes an uploaded array may have: X numbers; y numbers or (classification) unicode labels.
_NUMERIC_KINDS = "biuf"
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# What a damaged zip or .npy header raises (the fuzz test found zlib.error).
_ZIP_ERRORS = (
    ValueError, OSError, EOFError, RuntimeError, NotImplementedError, SyntaxError,
    zipfile.BadZipFile, zlib.error, struct.error,
)  # fmt: skip


@dataclass(frozen=True)
class _Member:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def parse_npz(data: bytes, task: str, limits: Limits) -> DatasetArrays:
    """An ``.npz`` with arrays ``X`` (n, d) and ``y``.

    Budget before inflating: every member's ``.npy`` header (dtype, ndim, shape) is read
    and checked against the limits, with the total inflated size (``npz_bytes``) and each
    member's compression ratio (``npz_compression_ratio``), before any array is read; an
    array is then read with exactly the bytes its header announced.
    """
    loc: list[str | int] = ["body", "file"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except _ZIP_ERRORS:
        raise Invalid.at(loc, "not a valid .npz file") from None
    if not {"X.npy", "y.npy"} <= names:
        raise Invalid.at(loc, "the .npz file must contain arrays 'X' and 'y'")
    x = _npy_header(archive, "X.npy", [*loc, "X"], limits)
    y = _npy_header(archive, "y.npy", [*loc, "y"], limits)
    if len(x.shape) != 2:
        raise Invalid.at(
            [*loc, "X"], f"X must be 2-dimensional (n_samples, n_features), got {len(x.shape)}"
        )
    if x.dtype.kind not in _NUMERIC_KINDS:
        raise Invalid.at([*loc, "X"], f"X must be numeric, not {x.dtype}")
    if x.shape[1] == 0:
        raise Invalid.at([*loc, "X"], "X has no feature columns")
    check_size(x.shape[0], x.shape[1], limits, [*loc, "X"])
    if len(y.shape) not in (1, 2) or y.shape[0] != x.shape[0]:
        raise Invalid.at(
            [*loc, "y"], f"y must be a vector (or a matrix of targets) of {x.shape[0]} rows"
        )
    if len(y.shape) == 2 and y.shape[1] > limits.dataset_features:
        raise Invalid.at(
            [*loc, "y"],
            f"at most {limits.dataset_features} target columns ({limit_env('dataset_features')})",
        )
    if not (y.dtype.kind in _NUMERIC_KINDS or (y.dtype.kind == "U" and task == "classification")):
        raise Invalid.at(
            [*loc, "y"], f"y must be numbers or (classification) labels, not {y.dtype}"
        )
    if y.dtype.kind == "U" and y.dtype.itemsize > 4 * limits.label_chars:
        raise Invalid.at(
            [*loc, "y"],
            f"labels of up to {y.dtype.itemsize // 4} characters; at most "
            f"{limits.label_chars} ({limit_env('label_chars')})",
        )
    if x.nbytes + y.nbytes > limits.npz_bytes:
        raise PayloadTooLarge(
            f"X and y would inflate to {x.nbytes + y.nbytes} bytes; at most "
            f"{limits.npz_bytes} ({limit_env('npz_bytes')})",
            errors=[(loc, f"at most {limits.npz_bytes} bytes inflated ({limit_env('npz_bytes')})")],
        )
    X = _read_npy(archive, x, [*loc, "X"])
    Y = _read_npy(archive, y, [*loc, "y"])
    return build_arrays(X, Y, task, limits, loc=loc)


def _npy_header(
    archive: zipfile.ZipFile, name: str, loc: list[str | int], limits: Limits
) -> _Member:
    """The member's ``.npy`` header, read from its first bytes only."""
    info = archive.getinfo(name)
    if info.compress_type not in _ZIP_METHODS:
        raise Invalid.at(loc, f"{name} is compressed with an unsupported method")
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > limits.npz_compression_ratio:
        raise PayloadTooLarge(
            f"{name} inflates {ratio:.0f}-fold; at most {limits.npz_compression_ratio} "
            f"({limit_env('npz_compression_ratio')})",
            errors=[(loc, f"compression ratio over {limits.npz_compression_ratio}")],
        )
    try:
        with archive.open(name) as fh:
            shape, fortran_order, dtype = _header(fh)
    except _ZIP_ERRORS:
        raise Invalid.at(loc, f"{name} is not a valid .npy array") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise Invalid.at(
            loc, f"{name} holds Python objects or records; only numeric or string arrays"
        )
    if len(shape) > 2:
        raise Invalid.at(loc, f"{name} has {len(shape)} dimensions; at most 2")
    return _Member(name, tuple(int(s) for s in shape), dtype, bool(fortran_order))


def _header(fh: Any) -> tuple[Any, bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)  # type: ignore[no-any-return]
    return np.lib.format.read_array_header_2_0(fh)  # type: ignore[no-any-return]


def _read_npy(archive: zipfile.ZipFile, member: _Member, loc: list[str | int]) -> np.ndarray:
    """Exactly the bytes the (checked) header announced: a member that says less and holds
    more is not inflated past it."""
    try:
        with archive.open(member.name) as fh:
            _header(fh)
            raw = fh.read(member.nbytes)
    except _ZIP_ERRORS:
        raise Invalid.at(loc, f"{member.name} is not a valid .npy array") from None
    if len(raw) != member.nbytes:
        raise Invalid.at(loc, f"{member.name} is shorter than its header says")
    flat = np.frombuffer(raw, dtype=member.dtype)
    return flat.reshape(member.shape, order="F" if member.fortran_order else "C")


def pack(arrays: DatasetArrays) -> bytes:
    """NPZ bytes with ``X`` and ``y`` — identical data gives identical bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, arr in (("X", arrays.X), ("y", arrays.y)):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            with archive.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arr), allow_pickle=False)
    return out.getvalue()


def unpack(data: bytes, task: str, classes: list[Any] | None) -> DatasetArrays:
    """The inverse of ``pack``; X comes back as float64 (n, d)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        X = npz["X"].astype(np.float64, copy=False)
        y = npz["y"]
    return DatasetArrays(X=X, y=y, task=task, classes=classes)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
