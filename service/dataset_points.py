"""A bounded, deterministic sample of a stored dataset's points, for plotting
(``GET /datasets/{id}/points``; the job page's decision-boundary chart draws them).

The sample is strided, never random: the same dataset and the same ask give the same rows
every time (an answer's ETag holds forever, the data being content-addressed). For
classification every class keeps at least one row when the budget allows (a rare class
must not vanish from the chart), the rest shared in proportion to the classes' sizes.
Points are the stored (raw) features, the space ``POST /jobs/{id}/predict`` takes.

Bounded twice: at most ``max_points`` rows (default and cap ``DELTAFLOW_MAX_DATASET_POINTS``)
and at most ``DELTAFLOW_MAX_DATASET_POINT_VALUES`` values, rows x columns (a wide dataset
answers fewer rows; ``columns=`` picks the features to plot). Kernel code: no Flask.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.config import Limits, limit_env
from service.dataset_arrays import DatasetArrays
from service.datasets import stored_arrays
from service.models import Dataset
from service.problems import Invalid


@dataclass(frozen=True)
class PointsAsk:
    """What one answer holds: at most ``rows`` rows of the feature ``columns``."""

    rows: int
    columns: tuple[int, ...]

    def tag(self, dataset: Dataset) -> str:
        """The answer's ETag: the dataset's content address and the ask (immutable data)."""
        asked = hashlib.sha256(f"{self.rows}:{self.columns}".encode()).hexdigest()[:16]
        return f"dataset-{dataset.id}-{dataset.sha256[:16]}-points-{asked}"


def ask(dataset: Dataset, max_points: int | None, columns: str | None, limits: Limits) -> PointsAsk:
    """Check ``max_points`` (1 to the cap; default the cap) and ``columns`` (a comma list of
    distinct feature indices; default all) against the dataset and the limits. 422 at
    ``query.max_points`` or ``query.columns``."""
    cap = limits.dataset_points
    if max_points is None:
        max_points = cap
    if not 1 <= max_points <= cap:
        raise Invalid.at(
            ["query", "max_points"],
            f"max_points must be between 1 and {cap} ({limit_env('dataset_points')})",
        )
    picked = _columns(columns, dataset.n_features)
    by_values = max(1, limits.dataset_point_values // len(picked))
    return PointsAsk(rows=min(max_points, by_values), columns=picked)


def _columns(text: str | None, n_features: int) -> tuple[int, ...]:
    if text is None:
        return tuple(range(n_features))
    loc: list[str | int] = ["query", "columns"]
    picked: list[int] = []
    for part in text.split(","):
        part = part.strip()
        # Short ASCII digits only: int() of thousands of digits is slow, then refused.
        if not (part.isascii() and part.isdigit() and len(part) <= 9) or int(part) >= n_features:
            raise Invalid.at(
                loc, f"columns are feature indices 0 to {n_features - 1}, comma-separated"
            )
        picked.append(int(part))
    if len(set(picked)) != len(picked):
        raise Invalid.at(loc, "a column is named twice")
    return tuple(picked)


def sample_rows(arrays: DatasetArrays, m: int) -> np.ndarray:
    """Sorted indices of at most ``m`` rows, strided (deterministic).

    Classification: with ``m`` at least the number of classes, each class gets one row plus
    its share of the rest (largest remainders), strided within the class; with fewer, the
    ``m`` largest classes get one row each.

    Returns ndarray of shape (min(m, n_samples),), int64, ascending.
    """
    n = arrays.n_samples
    if m >= n:
        return np.arange(n, dtype=np.int64)
    if arrays.classes is None:
        return (np.arange(m, dtype=np.int64) * n) // m
    counts = np.bincount(arrays.y, minlength=len(arrays.classes))
    present = np.flatnonzero(counts)
    quota = np.zeros(len(counts), dtype=np.int64)
    if m < len(present):
        largest = present[np.argsort(-counts[present], kind="stable")[:m]]
        quota[largest] = 1
    else:
        share = np.zeros(len(counts))
        share[present] = (m - len(present)) * counts[present] / n
        quota[present] = 1 + np.floor(share[present]).astype(np.int64)
        remainder = share - np.floor(share)
        left = m - int(quota.sum())
        while left > 0:  # largest remainders first, never past a class's size (m < n)
            room = present[quota[present] < counts[present]]
            more = room[np.argsort(-remainder[room], kind="stable")[:left]]
            quota[more] += 1
            left -= len(more)
    picked = []
    for label in np.flatnonzero(quota):
        rows = np.flatnonzero(arrays.y == label)
        q = int(quota[label])
        picked.append(rows[(np.arange(q, dtype=np.int64) * len(rows)) // q])
    return np.sort(np.concatenate(picked))


def dataset_points(session: Session, dataset: Dataset, asked: PointsAsk) -> dict[str, Any]:
    """The answer: ``{dataset_id, task, classes, columns, X, y, total, sampled}``; ``y``
    holds the original labels (classification) or targets (regression)."""
    arrays = stored_arrays(session, dataset.tenant_id, dataset.id)
    rows = sample_rows(arrays, asked.rows)
    X = arrays.X[np.ix_(rows, np.asarray(asked.columns, dtype=np.int64))]
    if arrays.classes is None:
        y: list[Any] = arrays.y[rows].tolist()
    else:
        y = [arrays.classes[i] for i in arrays.y[rows].tolist()]
    return {
        "dataset_id": dataset.id,
        "task": dataset.task,
        "classes": dataset.classes,
        "columns": list(asked.columns),
        "X": X.tolist(),
        "y": y,
        "total": arrays.n_samples,
        "sampled": len(rows) < arrays.n_samples,
    }
