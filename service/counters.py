"""Counters that ``GET /metrics`` reports, kept in the database (``metric_counts``).

Epochs trained, job durations and the reaper's recoveries happen in worker processes on
any number of hosts, which restart. Each is added **in the same transaction as what it
counts** (a flush, a finish, a recovery), so the numbers are exact, are never counted for
a rolled-back change, and are right after any restart of any process — the state Flower
loses (flower#203, #224, #1145). A scrape sums a handful of rows (``totals``).

Concurrent writers would queue on one row, so each counter has ``SHARDS`` rows and a
run always adds to the shard of its job id. Kernel code: no Flask, no Celery, no
prometheus_client (``service.metrics`` turns these rows into metric families).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from service.db import dialect_insert, insert_built_once
from service.models import MetricCount
from service.timeutil import as_utc

# One addition to a counter: its name, the amount and its labels (``add_many``'s rows).
Amount = tuple[str, float, Mapping[str, str] | None]

SHARDS = 8
EPOCHS = "epochs"
RECOVERED = "jobs_recovered"
DURATION = "job_duration_seconds"
# Upper bounds of deltaflow_job_duration_seconds, in seconds: a toy run to a long one.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0)


def label_text(labels: Mapping[str, str] | None) -> str:
    """The canonical text of a label set: ``k=v`` sorted by key, comma-joined."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def parse_labels(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part)


def add(
    session: Session,
    name: str,
    amount: float = 1.0,
    *,
    labels: Mapping[str, str] | None = None,
    shard_key: str = "",
) -> None:
    """Add ``amount`` to a counter, in the caller's transaction."""
    shard = zlib.crc32(shard_key.encode()) % SHARDS
    insert = dialect_insert(session)(MetricCount).values(
        name=name, labels=label_text(labels), shard=shard, value=float(amount)
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["name", "labels", "shard"],
            set_={"value": MetricCount.value + insert.excluded.value},
        )
    )


def add_many(
    session: Session,
    amounts: Sequence[tuple[str, float, Mapping[str, str] | None]],
    *,
    shard_key: str = "",
) -> None:
    """``add`` several distinct counters (name, amount, labels) in one statement."""
    if not amounts:
        return
    shard = zlib.crc32(shard_key.encode()) % SHARDS
    rows = [
        {"name": name, "labels": label_text(labels), "shard": shard, "value": float(amount)}
        for name, amount, labels in amounts
    ]
    # executemany of one statement built once: a multi-VALUES literal cannot be cached,
    # so SQLAlchemy compiled it afresh at every finish (its largest compile per tiny job).
    session.execute(insert_built_once(session, _upsert), rows)


def _upsert(make: Any) -> Any:
    """``metric_counts``' add-to-value upsert of one row (``insert_built_once``)."""
    insert = make(MetricCount.__table__)
    return insert.on_conflict_do_update(
        index_elements=["name", "labels", "shard"],
        set_={"value": MetricCount.value + insert.excluded.value},
    )


def observe_duration(
    session: Session,
    job_id: str,
    status: str,
    started_at: datetime | None,
    finished_at: datetime,
) -> None:
    """One finished run's wall time (started → finished) into the duration histogram:
    its bucket (not cumulative: ``totals`` readers cumulate), sum and count."""
    add_many(session, duration_amounts(status, started_at, finished_at), shard_key=job_id)


def duration_amounts(
    status: str, started_at: datetime | None, finished_at: datetime
) -> list[tuple[str, float, Mapping[str, str] | None]]:
    """The histogram's three additions for one run (``add_many``'s rows; none for a job
    cancelled while queued, which had no run to time). A finish that counts more (its
    last epochs) adds them all in one statement."""
    started = as_utc(started_at)
    if started is None:  # cancelled while queued: no run to time
        return []
    seconds = max(0.0, (as_utc(finished_at) - started).total_seconds())  # type: ignore[operator]
    bound = next((b for b in DURATION_BUCKETS if seconds <= b), None)
    le = "+Inf" if bound is None else repr(bound)
    return [
        (DURATION + "_bucket", 1.0, {"status": status, "le": le}),
        (DURATION + "_sum", seconds, {"status": status}),
        (DURATION + "_count", 1.0, {"status": status}),
    ]


def summed(amounts: Sequence[Amount]) -> list[Amount]:
    """``amounts`` with the rows of one counter (name and labels) added up, for one
    ``add_many`` of several runs (a group's finish)."""
    total: dict[tuple[str, str], Amount] = {}
    for name, amount, labels in amounts:
        key = (name, label_text(labels))
        _, before, _ = total.get(key, (name, 0.0, labels))
        total[key] = (name, before + amount, labels)
    return list(total.values())


def totals(connection: Connection) -> dict[tuple[str, str], float]:
    """Every counter summed over its shards: ``{(name, labels text): value}``."""
    rows = connection.execute(
        select(MetricCount.name, MetricCount.labels, func.sum(MetricCount.value)).group_by(
            MetricCount.name, MetricCount.labels
        )
    ).all()
    return {(name, labels): float(value) for name, labels, value in rows}
