"""A dataset in memory: validated arrays, whatever they came from.

``build_arrays`` is the one check of raw X and y (lists or arrays: a JSON upload, a
parsed file, an inline dataset in a job spec): shapes, finiteness, sizes against the
limits, and class labels encoded as indices. Kernel code: numpy, no database.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.config import Limits, limit_env
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

    Sizes are checked before anything is allocated (a list's length and first row say
    what numpy would build); labels are encoded without numpy's fixed-width strings, so a
    long label costs its own length, not its length times the samples.
    Raises ``Invalid`` with the location of the first problem (``loc`` + "X" or "y").
    """
    loc = list(loc)
    if task not in TASKS:
        raise Invalid.at([*loc, "task"], f"task must be one of {', '.join(TASKS)}")
    X = _float_matrix(X, [*loc, "X"], limits, max_samples)
    n = X.shape[0]
    y_loc = [*loc, "y"]
    if isinstance(y, list | tuple):
        if len(y) != n:
            raise Invalid.at(y_loc, f"X has {n} rows but y has {len(y)}")
        if task == "classification":
            labels, classes = _encode_label_list(y, y_loc, limits)
            return DatasetArrays(X=X, y=labels, task=task, classes=classes)
        y_arr = _target_list(y, y_loc, limits)
    else:
        y_arr = _as_array(y, y_loc)
    if y_arr.ndim == 0 or y_arr.ndim > 2 or (y_arr.ndim == 2 and task == "classification"):
        raise Invalid.at(y_loc, "y must be a vector (or a matrix of targets for regression)")
    if y_arr.shape[0] != n:
        raise Invalid.at(y_loc, f"X has {n} rows but y has {y_arr.shape[0]}")
    if task == "classification":
        labels, classes = _encode_labels(y_arr, y_loc, limits)
        return DatasetArrays(X=X, y=labels, task=task, classes=classes)
    targets = _finite_floats(y_arr, y_loc, "targets")
    if targets.ndim == 2 and targets.shape[1] == 0:
        raise Invalid.at(y_loc, "y has no target columns")
    return DatasetArrays(X=X, y=targets, task=task, classes=None)


def _as_array(value: Any, loc: list[str | int]) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    raise Invalid.at(loc, "must be a list")


def _float_matrix(
    X: Any, loc: list[str | int], limits: Limits, max_samples: int | None
) -> np.ndarray:
    if isinstance(X, np.ndarray):
        if X.ndim != 2:
            raise Invalid.at(loc, f"X must be 2-dimensional (n_samples, n_features), got {X.ndim}")
        if X.shape[1] == 0:
            raise Invalid.at(loc, "X has no feature columns")
        check_size(X.shape[0], X.shape[1], limits, loc, max_samples)
        return _finite_floats(X, loc, "X")
    if not isinstance(X, list | tuple):
        raise Invalid.at(loc, "X must be a list of rows")
    widths = {len(row) if isinstance(row, list | tuple) else -1 for row in X}
    if -1 in widths:
        raise Invalid.at(loc, "X must be a list of rows")
    if len(widths) > 1:
        raise Invalid.at(loc, "rows have different lengths (ragged X)")
    if widths == {0}:
        raise Invalid.at(loc, "X has no feature columns")
    check_size(len(X), widths.pop() if widths else 0, limits, loc, max_samples)
    # dtype given: numpy converts value by value and never builds a string or object array.
    try:
        arr = np.array(X, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise Invalid.at(loc, "X must be a 2-dimensional matrix of numbers") from None
    if arr.ndim != 2:
        raise Invalid.at(loc, f"X must be 2-dimensional (n_samples, n_features), got {arr.ndim}")
    return _finite_floats(arr, loc, "X")


def _target_list(y: Sequence[Any], loc: list[str | int], limits: Limits) -> np.ndarray:
    """Regression targets from a list: a vector, or a matrix (n, k) with k bounded."""
    first = y[0] if y else None
    if isinstance(first, list | tuple):
        widths = {len(row) if isinstance(row, list | tuple) else -1 for row in y}
        if -1 in widths or len(widths) > 1:
            raise Invalid.at(loc, "y must be a vector or a matrix of targets")
        k = widths.pop()
        if k > limits.dataset_features:
            raise Invalid.at(
                loc,
                f"at most {limits.dataset_features} target columns "
                f"({limit_env('dataset_features')})",
            )
    try:
        return np.array(y, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise Invalid.at(loc, "regression targets must be numbers") from None


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


_INT64 = 2**63


def _encode_label_list(
    values: Sequence[Any], loc: list[str | int], limits: Limits
) -> tuple[np.ndarray, list[Any]]:
    """Labels from a list (JSON or CSV): all strings or all integral numbers, never mixed
    (``0`` and ``"0"`` must not become one class). Strings are encoded through a dict."""
    kinds: set[str] = set()
    for value in values:
        if isinstance(value, str):
            kinds.add("string")
        elif isinstance(value, int | float):  # bool is an int: True is 1
            kinds.add("number")
        else:
            raise Invalid.at(loc, "classification labels must be integers or strings")
        if len(kinds) > 1:
            raise Invalid.at(loc, "labels must be all numbers or all strings, not a mix")
    if kinds == {"string"}:
        distinct = set(values)
        _check_class_count(len(distinct), loc, limits)
        for label in distinct:
            check_label(label, loc, limits)
        classes = sorted(distinct)
        index = {label: i for i, label in enumerate(classes)}
        indices = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
        return indices, classes
    numbers: list[int] = []
    for value in values:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise Invalid.at(loc, "classification labels must be integers or strings")
        number = int(value)
        if not -_INT64 <= number < _INT64:
            raise Invalid.at(loc, "integer labels must fit in 64 bits")
        numbers.append(number)
    return _encode_labels(np.array(numbers, dtype=np.int64), loc, limits)


def check_label(label: str, loc: list[str | int], limits: Limits) -> None:
    """At most ``label_chars`` characters and no control characters (NUL included)."""
    if len(label) > limits.label_chars:
        raise Invalid.at(
            loc,
            f"a label has {len(label)} characters; at most {limits.label_chars} "
            f"({limit_env('label_chars')})",
        )
    if any(unicodedata.category(ch) == "Cc" for ch in label):
        raise Invalid.at(loc, f"label {label[:40]!r} contains a control character")


def _check_class_count(count: int, loc: list[str | int], limits: Limits) -> None:
    if count < 2:
        raise Invalid.at(loc, "classification needs at least 2 classes")
    if count > limits.classes:
        raise Invalid.at(loc, f"at most {limits.classes} classes ({limit_env('classes')})")


def _encode_labels(
    y: np.ndarray, loc: list[str | int], limits: Limits
) -> tuple[np.ndarray, list[Any]]:
    """Class labels -> (indices (n,), sorted original labels). Integral floats count as ints."""
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise Invalid.at(loc, "classification labels must be integers or strings")
        if np.abs(y).max(initial=0.0) >= _INT64:
            raise Invalid.at(loc, "integer labels must fit in 64 bits")
        y = y.astype(np.int64)
    elif y.dtype.kind == "b":
        y = y.astype(np.int64)
    elif y.dtype.kind == "U":
        if y.dtype.itemsize > 4 * limits.label_chars:
            raise Invalid.at(
                loc, f"labels longer than {limits.label_chars} ({limit_env('label_chars')})"
            )
    elif y.dtype.kind not in "iu":
        raise Invalid.at(loc, "classification labels must be integers or strings")
    classes, indices = np.unique(y, return_inverse=True)
    _check_class_count(len(classes), loc, limits)
    labels = [c.item() for c in classes]
    for label in labels:
        if isinstance(label, str):
            check_label(label, loc, limits)
    return indices.astype(np.int64).reshape(-1), labels


def check_size(
    n: int, d: int, limits: Limits, loc: list[str | int], max_samples: int | None = None
) -> None:
    cap = min(limits.dataset_samples, max_samples or limits.dataset_samples)
    if n < 2:
        raise Invalid.at(loc, "a dataset needs at least 2 samples")
    if n > cap:
        name = "dataset_samples" if cap == limits.dataset_samples else "inline_samples"
        raise Invalid.at(loc, f"at most {cap} samples ({limit_env(name)})")
    if d > limits.dataset_features:
        raise Invalid.at(
            loc, f"at most {limits.dataset_features} features ({limit_env('dataset_features')})"
        )
    if n * d > limits.dataset_values:
        raise Invalid.at(
            loc,
            f"at most {limits.dataset_values} values (samples x features) "
            f"({limit_env('dataset_values')})",
        )


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
