"""Curves and batch results as pandas DataFrames — pandas stays optional.

pandas is imported only when a frame is asked for; without it the call raises an
ImportError that says how to install it, and everything else in the client works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PANDAS_MISSING = (
    "this needs pandas, which the client does not install by itself: "
    "pip install pandas (or pip install 'deltaflow[frames]')"
)


def pandas() -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError as error:
        raise ImportError(PANDAS_MISSING) from error


METRICS = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"]


def _frame(rows: list[dict[str, Any]], empty_columns: list[str], index: str) -> pd.DataFrame:
    """Rows as a frame indexed by ``index``; no rows give the usual columns, empty."""
    if rows:
        return pandas().DataFrame.from_records(rows).set_index(index)
    return pandas().DataFrame(columns=empty_columns).set_index(index)


def curve_frame(points: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per epoch, indexed by ``epoch``; nested fields (``grad_norms``) stay objects."""
    return _frame(points, ["epoch", *METRICS], "epoch")


def batch_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per job of a batch summary: its varied parameters, then final metrics."""
    rows = []
    for job in summary.get("jobs", []):
        row: dict[str, Any] = {
            "id": job.get("id"),
            "index": job.get("index"),
            "name": job.get("name"),
            "status": job.get("status"),
        }
        row.update(job.get("params") or {})
        row["epoch"] = job.get("epoch")
        metrics = job.get("metrics") or {}
        for name in METRICS:
            row[name] = metrics.get(name)
        rows.append(row)
    return rows


def batch_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """``batch_rows`` as a frame indexed by the job id, in batch order."""
    columns = ["id", "index", "name", "status", *summary.get("varied", []), "epoch", *METRICS]
    return _frame(batch_rows(summary), columns, "id")
