"""Datasets: parse and validate uploads, pack them as NPZ, store them content-addressed.

A dataset's arrays live in ``dataset_blobs`` keyed by the sha256 of the packed bytes, so two
uploads of the same data share one blob and any worker host can load (and cache) it by hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Limits
from service.db import dialect_insert
from service.models import Dataset, DatasetBlob, Job
from service.problems import Conflict, Invalid, NotFound
from service.schemas.names import TASKS
from service.timeutil import utcnow

# Fixed zip timestamps make the packed bytes (and so the sha256) a function of the data only.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DatasetArrays:
    """Validated arrays of one dataset.

    X : ndarray of shape (n_samples, n_features), float32 or float64
    y : classification: int64 class indices of shape (n_samples,);
        regression: float64 targets of shape (n_samples,) or (n_samples, n_outputs)
    classes : the original labels (index i means ``classes[i]``), None for regression
    """

    X: np.ndarray
    y: np.ndarray
    task: str
    classes: list[Any] | None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_outputs(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        return 1 if self.y.ndim == 1 else int(self.y.shape[1])

    def __repr__(self) -> str:
        size = f"{self.n_samples}x{self.n_features}"
        return f"DatasetArrays({size} {self.task}, {self.n_outputs} outputs)"


# --- building and validating ---------------------------------------------------------


def build_arrays(
    X: Any,
    y: Any,
    task: str,
    limits: Limits,
    loc: Sequence[str | int] = ("body",),
    max_samples: int | None = None,
) -> DatasetArrays:
    """Validate raw X and y (lists or arrays) and encode the labels.

    Raises ``Invalid`` with the location of the first problem (``loc`` + "X" or "y").
    """
    loc = list(loc)
    if task not in TASKS:
        raise Invalid.at([*loc, "task"], f"task must be one of {', '.join(TASKS)}")
    X = _float_matrix(X, [*loc, "X"])
    n, d = X.shape
    _check_size(n, d, limits, [*loc, "X"], max_samples)
    y_arr = _as_array(y, [*loc, "y"])
    if y_arr.ndim == 0 or y_arr.ndim > 2 or (y_arr.ndim == 2 and task == "classification"):
        raise Invalid.at([*loc, "y"], "y must be a vector (or a matrix of targets for regression)")
    if y_arr.shape[0] != n:
        raise Invalid.at([*loc, "y"], f"X has {n} rows but y has {y_arr.shape[0]}")
    if task == "classification":
        labels, classes = _encode_labels(y_arr, [*loc, "y"], limits)
        return DatasetArrays(X=X, y=labels, task=task, classes=classes)
    targets = _finite_floats(y_arr, [*loc, "y"], "targets")
    if targets.ndim == 2 and targets.shape[1] == 0:
        raise Invalid.at([*loc, "y"], "y has no target columns")
    return DatasetArrays(X=X, y=targets, task=task, classes=None)


def _as_array(value: Any, loc: list[str | int]) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except ValueError:  # numpy refuses ragged nested lists
        raise Invalid.at(loc, "rows have different lengths") from None


def _float_matrix(X: Any, loc: list[str | int]) -> np.ndarray:
    if isinstance(X, list):
        widths = {len(row) if isinstance(row, list | tuple) else -1 for row in X}
        if -1 in widths:
            raise Invalid.at(loc, "X must be a list of rows")
        if len(widths) > 1:
            raise Invalid.at(loc, "rows have different lengths (ragged X)")
    arr = _as_array(X, loc)
    if arr.ndim != 2:
        raise Invalid.at(loc, f"X must be 2-dimensional (n_samples, n_features), got {arr.ndim}")
    if arr.shape[1] == 0:
        raise Invalid.at(loc, "X has no feature columns")
    return _finite_floats(arr, loc, "X")


def _finite_floats(arr: np.ndarray, loc: list[str | int], what: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        out = arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
    elif arr.dtype.kind in "iub":
        out = arr.astype(np.float64)
    else:
        raise Invalid.at(loc, f"{what} must be numeric")
    if not np.isfinite(out).all():
        raise Invalid.at(loc, f"{what} contains non-finite values (NaN or infinity)")
    return np.ascontiguousarray(out)


def _encode_labels(
    y: np.ndarray, loc: list[str | int], limits: Limits
) -> tuple[np.ndarray, list[Any]]:
    """Class labels -> (indices (n,), sorted original labels). Integral floats count as ints."""
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise Invalid.at(loc, "classification labels must be integers or strings")
        y = y.astype(np.int64)
    elif y.dtype.kind == "b":
        y = y.astype(np.int64)
    elif y.dtype.kind == "U":
        pass
    elif y.dtype.kind not in "iu":
        raise Invalid.at(loc, "classification labels must be integers or strings")
    classes, indices = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise Invalid.at(loc, "classification needs at least 2 classes")
    if len(classes) > limits.classes:
        raise Invalid.at(loc, f"at most {limits.classes} classes")
    labels = [c.item() for c in classes]
    return indices.astype(np.int64).reshape(-1), labels


def _check_size(
    n: int, d: int, limits: Limits, loc: list[str | int], max_samples: int | None = None
) -> None:
    cap = min(limits.dataset_samples, max_samples or limits.dataset_samples)
    if n < 2:
        raise Invalid.at(loc, "a dataset needs at least 2 samples")
    if n > cap:
        raise Invalid.at(loc, f"at most {cap} samples")
    if d > limits.dataset_features:
        raise Invalid.at(loc, f"at most {limits.dataset_features} features")
    if n * d > limits.dataset_values:
        raise Invalid.at(loc, f"at most {limits.dataset_values} values (samples x features)")


def infer_task(y: Any) -> str:
    """Integer or string labels mean classification; fractional or matrix targets regression."""
    if not isinstance(y, list | tuple):
        return "regression"
    for value in y:
        if isinstance(value, list | tuple):
            return "regression"
        if isinstance(value, float) and not value.is_integer():
            return "regression"
    return "classification"


# --- file formats --------------------------------------------------------------------


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
    _check_size(len(body), len(header) - 1, limits, loc)
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
        _check_size(x_shape[0], x_shape[1], limits, [*loc, "X"])
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


# --- packing -------------------------------------------------------------------------


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


# --- storage -------------------------------------------------------------------------


def store_dataset(session: Session, tenant_id: str, name: str, arrays: DatasetArrays) -> Dataset:
    """Add a Dataset row (and its blob unless the same bytes are stored already). No commit."""
    data = pack(arrays)
    digest = sha256_hex(data)
    if session.get(DatasetBlob, digest) is None:
        _insert_blob_once(session, digest, data)
    dataset = Dataset(
        tenant_id=tenant_id,
        name=name,
        task=arrays.task,
        n_samples=arrays.n_samples,
        n_features=arrays.n_features,
        n_outputs=arrays.n_outputs,
        classes=arrays.classes,
        sha256=digest,
        size_bytes=len(data),
    )
    session.add(dataset)
    session.flush()
    return dataset


def _insert_blob_once(session: Session, digest: str, data: bytes) -> None:
    """Insert a blob unless a concurrent upload of the same bytes just did (no 500 on a race)."""
    stmt = dialect_insert(session)(DatasetBlob).values(
        sha256=digest, data=data, size_bytes=len(data), created_at=utcnow()
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    """The tenant's dataset; another tenant's id is reported exactly like a missing one."""
    dataset = session.scalar(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    )
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")
    return dataset


def list_datasets_query(tenant_id: str):  # type: ignore[no-untyped-def]
    """The tenant's datasets (for the shared keyset paginator: newest first)."""
    return select(Dataset).where(Dataset.tenant_id == tenant_id)


def delete_dataset(session: Session, tenant_id: str, dataset_id: str) -> None:
    """Delete a dataset no job uses; drop its blob when no dataset references it. No commit."""
    dataset = get_dataset(session, tenant_id, dataset_id)
    users = session.scalar(
        select(func.count()).select_from(Job).where(Job.dataset_id == dataset.id)
    )
    if users:
        raise Conflict(f"dataset {dataset_id} is used by {users} job(s); delete them first")
    digest = dataset.sha256
    session.delete(dataset)
    session.flush()
    others = session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.sha256 == digest)
    )
    if not others:
        blob = session.get(DatasetBlob, digest)
        if blob is not None:
            session.delete(blob)
            session.flush()
