"""Plain-text tables and detail blocks for people (the CLI's ``--json`` is for scripts)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

CURVE_FIELDS = ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
METRICS = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"]
CSV_FIELDS = [*METRICS, "learning_rate", "grad_norms", "seconds"]


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns two spaces apart, under upper-case headers."""
    text = [[h.upper() for h in headers], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(line[i]) for line in text) for i in range(len(headers))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in text
    )


def details(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key: value`` lines with the values aligned; None values are left out."""
    shown = [(k, v) for k, v in pairs if v is not None]
    width = max((len(k) for k, _ in shown), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {cell(v)}" for k, v in shown)


def _epochs(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    return f"{progress.get('epoch', 0)}/{progress.get('epochs', '?')}"


def jobs_table(jobs: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            job["id"],
            job.get("name"),
            job.get("status"),
            _epochs(job),
            *((job.get("metrics") or {}).get(m) for m in METRICS),
            job.get("created_at"),
        ]
        for job in jobs
    ]
    return table(["id", "name", "status", "epoch", *METRICS, "created_at"], rows)


def job_details(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    metrics = job.get("metrics") or {}
    error = job.get("error") or {}
    return details(
        [
            ("id", job.get("id")),
            ("name", job.get("name")),
            ("status", job.get("status")),
            ("epoch", _epochs(job)),
            ("eta_seconds", progress.get("eta_seconds")),
            *((m, metrics.get(m)) for m in METRICS),
            ("error", error.get("message")),
            ("batch_id", job.get("batch_id")),
            ("created_at", job.get("created_at")),
            ("started_at", job.get("started_at")),
            ("finished_at", job.get("finished_at")),
        ]
    )


def curve_table(points: Sequence[dict[str, Any]]) -> str:
    return table(CURVE_FIELDS, [[p.get(f) for f in CURVE_FIELDS] for p in points])


def curve_csv(points: Sequence[dict[str, Any]]) -> str:
    """Every field the server sent, the usual ones first; nested values as JSON."""
    fields = list(CURVE_FIELDS)
    for point in points:
        fields += [k for k in point if k not in fields and point[k] is not None]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for point in points:
        writer.writerow(["" if point.get(f) is None else _csv_value(point[f]) for f in fields])
    return out.getvalue().rstrip("\n")


def _csv_value(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else value


def batch_details(summary: dict[str, Any]) -> str:
    progress = summary.get("progress") or {}
    counts = summary.get("counts") or {}
    best = summary.get("best") or {}
    head = details(
        [
            ("id", summary.get("id")),
            ("name", summary.get("name")),
            ("kind", summary.get("kind")),
            ("finished", f"{progress.get('finished', 0)}/{progress.get('total', '?')}"),
            ("counts", ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "-"),
            (
                "best",
                f"{best['id']} ({summary.get('metric')} {best['value']:.4g})" if best else None,
            ),
        ]
    )
    varied = list(summary.get("varied") or [])
    rows = [
        [
            job["id"],
            job.get("status"),
            *((job.get("params") or {}).get(path) for path in varied),
            *((job.get("metrics") or {}).get(m) for m in METRICS),
        ]
        for job in summary.get("jobs", [])
    ]
    return head + "\n\n" + table(["id", "status", *varied, *METRICS], rows)


def dataset_details(dataset: dict[str, Any]) -> str:
    return details(
        [
            (key, dataset.get(key))
            for key in ("id", "name", "task", "n_samples", "n_features", "classes", "sha256")
        ]
    )
