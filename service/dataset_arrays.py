"""A dataset in memory: validated arrays, whatever they came from.

``build_arrays`` is the one check of raw X and y (lists or arrays: a JSON upload, a
parsed file, an inline dataset in a job spec): shapes, finiteness, sizes against the
limits, and class labels encoded as indices. Kernel code: numpy, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.config import Limits
from service.problems import Invalid
from service.schemas.names import TASKS


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
    check_size(n, d, limits, [*loc, "X"], max_samples)
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


def check_size(
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
