"""``GET /metrics``: Prometheus text format (docs/operations.md has the reference).

Two sources, each chosen so that the numbers are right after any restart:

- **HTTP metrics** (``deltaflow_http_requests_total``, ``…_request_duration_seconds``)
  are counted in the API process that answered, by route *template* (``/api/v1/jobs/<job_id>``,
  never the id: bounded cardinality) and status. Under gunicorn there are several
  processes, so prometheus_client runs in its multiprocess mode: ``deltaflow api`` points
  ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before gunicorn starts
  (``prepare_multiprocess_dir``), every process writes its own files there, and a scrape,
  answered by any one process, sums them all.
- **Everything about jobs and workers is read from the database at scrape time**, with
  a few cheap aggregate queries (``DatabaseCollector``): jobs by status, queue depth and
  the oldest queued job's age per queue, workers alive (``service.heartbeats``), and the
  counters workers keep in the database (epochs trained, job durations, recoveries:
  ``service.counters``). Nothing of it lives in a process, so nothing is lost when one
  restarts, and every host's work is included.

An optional bearer token (``DELTAFLOW_METRICS_TOKEN``) protects the endpoint.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from service import counters, heartbeats
from service.config import Settings
from service.models import Job, WebhookDelivery
from service.problems import Unauthorized
from service.schemas.names import JobStatus, Queue
from service.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PATH = "/metrics"
UNMATCHED_ROUTE = "unmatched"  # a 404 path is not a label value (scanners would explode it)
disable_created_metrics()  # the *_created series double the output for nothing we use
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "deltaflow_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "deltaflow_http_request_duration_seconds",
    "Time from the request reaching the app to its answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)


def prepare_multiprocess_dir(data_dir: Path) -> str:
    """Before gunicorn starts: ``PROMETHEUS_MULTIPROC_DIR`` (kept if the operator set it,
    else ``$DELTAFLOW_DATA_DIR/prometheus``), emptied of an earlier run's files — as
    prometheus_client asks. Counters then restart at zero, which Prometheus's ``rate``
    reads as a reset."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or (Path(data_dir) / "prometheus")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return str(folder)


class DatabaseCollector(Collector):
    """Job, queue, worker and worker-side counter metrics, read at scrape time."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        now = utcnow()
        with self.engine.connect() as connection:
            by_status = dict(
                connection.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            )
            queued = connection.execute(
                select(Job.queue, func.count(), func.min(Job.created_at))
                .where(Job.status == JobStatus.queued.value)
                .group_by(Job.queue)
            ).all()
            window = heartbeats.alive_window(self.settings.reaper_interval_seconds)
            alive = heartbeats.alive(connection, window, now)
            totals = counters.totals(connection)
            deliveries = dict(
                connection.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
                ).all()
            )

        jobs = GaugeMetricFamily("deltaflow_jobs", "Jobs by status, now.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], by_status.get(status.value, 0))
        yield jobs

        depth = GaugeMetricFamily(
            "deltaflow_queue_depth",
            "Jobs queued (waiting for a worker), per queue.",
            labels=["queue"],
        )
        oldest = GaugeMetricFamily(
            "deltaflow_queue_oldest_age_seconds",
            "Age of the oldest queued job (since it was submitted), per queue; 0 when empty.",
            labels=["queue"],
        )
        seen = {row[0]: row for row in queued}
        for queue in sorted({q.value for q in Queue} | set(seen)):
            _, count, first = seen.get(queue, (queue, 0, None))
            depth.add_metric([queue], count)
            age = (now - as_utc(first)).total_seconds() if first is not None else 0.0  # type: ignore[operator]
            oldest.add_metric([queue], max(0.0, age))
        yield depth
        yield oldest

        yield GaugeMetricFamily(
            "deltaflow_workers_alive",
            f"Workers whose reaper wrote its heartbeat within the last {window:g} s.",
            value=alive,
        )
        epochs = CounterMetricFamily("deltaflow_epochs", "Epochs trained by workers (a resumed "
                                     "run's recomputed epochs included).")  # fmt: skip
        epochs.add_metric([], totals.get((counters.EPOCHS, ""), 0.0))
        yield epochs

        recovered = CounterMetricFamily(
            "deltaflow_jobs_recovered",
            "Jobs recovered by the reaper after their run was lost, by outcome "
            "(requeued, exhausted = failed with attempts_exhausted, cancelled).",
            labels=["outcome"],
        )
        for outcome in ("requeued", "exhausted", "cancelled"):
            value = totals.get((counters.RECOVERED, counters.label_text({"outcome": outcome})), 0)
            recovered.add_metric([outcome], value)
        yield recovered
        yield _durations(totals)

        hooks = GaugeMetricFamily(
            "deltaflow_webhook_deliveries",
            "Webhook deliveries by status (pending, sending, succeeded, failed), now.",
            labels=["status"],
        )
        for state in ("pending", "sending", "succeeded", "failed"):
            hooks.add_metric([state], deliveries.get(state, 0))
        yield hooks


def _durations(totals: dict[tuple[str, str], float]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "deltaflow_job_duration_seconds",
        "Wall time of finished jobs, from their first start to their end, by final status.",
        labels=["status"],
    )
    for status in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled):
        per_bound = {
            counters.parse_labels(labels).get("le"): value
            for (name, labels), value in totals.items()
            if name == counters.DURATION + "_bucket"
            and counters.parse_labels(labels).get("status") == status.value
        }
        cumulative, buckets = 0.0, []
        for bound in (*counters.DURATION_BUCKETS, "+Inf"):
            key = bound if isinstance(bound, str) else repr(bound)
            cumulative += per_bound.get(key, 0.0)
            buckets.append((key, cumulative))
        total = totals.get((counters.DURATION + "_sum", f"status={status.value}"), 0.0)
        family.add_metric([status.value], buckets, sum_value=total)
    return family


def render(engine: Engine, settings: Settings) -> bytes:
    """The scrape: this process's (or, under gunicorn, every process's) HTTP metrics and
    the database's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        for collector in (HTTP_REQUESTS, HTTP_DURATION):
            registry.register(collector)
    registry.register(DatabaseCollector(engine, settings))
    return generate_latest(registry)


def init_app(app: Flask, engine: Engine, settings: Settings) -> None:
    """Count every request by its route template, and serve ``GET /metrics``."""

    @app.before_request
    def _start_clock() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            rule = request.url_rule
            labels = (
                request.method,
                rule.rule if rule else UNMATCHED_ROUTE,
                str(response.status_code),
            )
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
        return response

    def metrics() -> Response:
        token = settings.metrics_token
        if token:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
                raise Unauthorized(
                    "GET /metrics needs 'Authorization: Bearer <DELTAFLOW_METRICS_TOKEN>'",
                    headers={"WWW-Authenticate": 'Bearer realm="deltaflow-metrics"'},
                )
        return Response(render(engine, settings), content_type=CONTENT_TYPE_LATEST)

    app.add_url_rule(PATH, "metrics", metrics, methods=["GET"])
