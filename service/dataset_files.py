"""Dataset files: the readers of uploads (CSV, NPZ) and the stored NPZ format.

Readers turn bytes into validated ``DatasetArrays`` (422 at ``["body", "file"]`` for a
file that cannot be read); ``pack``/``unpack`` are the content-addressed blob format that
workers load and cache. Kernel code: numpy, no database.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from typing import Any

import numpy as np

from service.config import Limits
from service.dataset_arrays import DatasetArrays, build_arrays, check_size
from service.problems import Invalid

# Fixed zip timestamps make the packed bytes (and so the sha256) a function of the data only.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
NPZ_MAGIC = b"PK"


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
    """A CSV with a header row and a ``target`` column; every other column is a feature."""
    loc: list[str | int] = ["body", "file"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid.at(loc, "the CSV file is not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO(text)))
    rows = [row for row in rows if row and any(cell.strip() for cell in row)]
    if not rows:
        raise Invalid.at(loc, "the CSV file is empty")
    header = [name.strip() for name in rows[0]]
    if "target" not in header:
        raise Invalid.at(loc, "the CSV header has no 'target' column")
    if len(header) < 2:
        raise Invalid.at(loc, "the CSV file has no feature columns")
    target = header.index("target")
    body = rows[1:]
    check_size(len(body), len(header) - 1, limits, loc)
    features: list[list[float]] = []
    labels: list[str] = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise Invalid.at(loc, f"line {line}: {len(row)} fields, the header has {len(header)}")
        try:
            features.append([float(cell) for i, cell in enumerate(row) if i != target])
        except ValueError:
            raise Invalid.at(loc, f"line {line}: a feature is not a number") from None
        labels.append(row[target].strip())
    y = _csv_targets(labels, task, loc)
    return build_arrays(np.asarray(features, dtype=np.float64), y, task, limits, loc=loc)


def _csv_targets(labels: list[str], task: str, loc: list[str | int]) -> np.ndarray:
    if any(label == "" for label in labels):
        raise Invalid.at(loc, "a target value is empty")
    try:
        values = np.asarray([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        if task == "regression":
            raise Invalid.at(loc, "regression targets must be numbers") from None
        return np.asarray(labels)
    return values


def parse_npz(data: bytes, task: str, limits: Limits) -> DatasetArrays:
    """An ``.npz`` with arrays ``X`` (n, d) and ``y``; shapes are checked before loading."""
    loc: list[str | int] = ["body", "file"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Invalid.at(loc, "not a valid .npz file") from None
    if not {"X.npy", "y.npy"} <= names:
        raise Invalid.at(loc, "the .npz file must contain arrays 'X' and 'y'")
    x_shape = _npy_shape(archive, "X.npy", loc)
    if len(x_shape) == 2:
        check_size(x_shape[0], x_shape[1], limits, [*loc, "X"])
    y_shape = _npy_shape(archive, "y.npy", loc)
    if len(y_shape) > 2 or (y_shape and y_shape[0] > limits.dataset_samples):
        raise Invalid.at([*loc, "y"], "y must be a vector of at most the dataset size")
    X = _read_npy(archive, "X.npy", loc)
    y = _read_npy(archive, "y.npy", loc)
    return build_arrays(X, y, task, limits, loc=loc)


def _npy_shape(archive: zipfile.ZipFile, name: str, loc: list[str | int]) -> tuple[int, ...]:
    try:
        with archive.open(name) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise Invalid.at(loc, f"{name} is not a valid .npy array") from None
    if dtype.hasobject:
        raise Invalid.at(loc, f"{name} holds Python objects; only numeric or string arrays")
    return tuple(int(s) for s in shape)


def _read_npy(archive: zipfile.ZipFile, name: str, loc: list[str | int]) -> np.ndarray:
    try:
        with archive.open(name) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        raise Invalid.at(loc, f"{name} is not a valid .npy array") from None


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
