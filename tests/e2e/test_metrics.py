"""``GET /metrics`` of a real ``deltaflow api`` (gunicorn, two processes, multiprocess mode)
with a real worker, on PostgreSQL and Redis: parsed with prometheus_client's own parser,
every value checked against the database or against the requests the test made — and
again after the API restarts."""

from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.db import transaction
from service.models import Job
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.jobs import tiny_spec

pytestmark = [pytest.mark.integration]

TOKEN = "metrics-test-token"


def scrape(server: ApiServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = requests.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def db_counts(factory) -> dict[str, int]:
    with factory() as session:
        return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def wait_until(check, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def api(production_backend, tmp_path_factory):
    log = tmp_path_factory.mktemp("api") / "api.log"
    server = ApiServer(
        production_backend.env(metrics_token=TOKEN), log, "--workers", "2", "--threads", "4"
    ).start()
    yield server
    server.stop()


def test_metrics_are_the_databases_and_the_requests(production_backend, api, worker_process):
    backend = production_backend
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "metrics")
    auth = {"Authorization": f"Bearer {key}"}

    assert requests.get(f"{api.url}/metrics", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(f"{api.url}/metrics", headers=wrong, timeout=10).status_code == 401

    # Two jobs queued with no worker: the queue depth and its oldest age come from the DB.
    ids = []
    for epochs in (20, 30):
        answer = requests.post(
            f"{api.url}/api/v1/jobs", json={"name": "m", **tiny_spec(epochs)}, headers=auth,
            timeout=10,
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    samples = scrape(api)
    assert value(samples, "deltaflow_queue_depth", queue="interactive") == 2
    assert value(samples, "deltaflow_queue_depth", queue="batch") == 0
    assert value(samples, "deltaflow_queue_oldest_age_seconds", queue="interactive") > 0
    assert value(samples, "deltaflow_jobs", status="queued") == 2
    assert value(samples, "deltaflow_workers_alive") == 0

    # Many GETs, answered by either of the two gunicorn processes: the scrape sums both.
    polls = 12
    for _ in range(polls):
        answer = requests.get(f"{api.url}/api/v1/jobs/{ids[0]}", headers=auth, timeout=10)
        assert answer.status_code == 200
    requests.get(f"{api.url}/api/v1/jobs/{'0' * 32}", headers=auth, timeout=10)  # 404
    requests.get(f"{api.url}/no/such/path", timeout=10)  # 404, no route

    worker = worker_process(backend)
    wait_until(lambda: db_counts(backend.factory).get("succeeded", 0) == 2, what="two jobs")
    wait_until(lambda: value(scrape(api), "deltaflow_workers_alive") == 1, what="heartbeat")

    samples = scrape(api)
    route = "/api/v1/jobs/<job_id>"
    assert value(samples, "deltaflow_http_requests_total", method="GET", route=route,
                 status="200") == polls  # fmt: skip
    assert value(samples, "deltaflow_http_requests_total", method="GET", route=route,
                 status="404") == 1  # fmt: skip
    assert value(samples, "deltaflow_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1  # fmt: skip
    assert value(samples, "deltaflow_http_requests_total", method="POST", route="/api/v1/jobs",
                 status="202") == 2  # fmt: skip
    assert value(samples, "deltaflow_http_request_duration_seconds_count", method="GET",
                 route=route, status="200") == polls  # fmt: skip
    for status, count in {"queued": 0, "running": 0, "succeeded": 2}.items():
        assert value(samples, "deltaflow_jobs", status=status) == count
        assert db_counts(backend.factory).get(status, 0) == count
    assert value(samples, "deltaflow_queue_depth", queue="interactive") == 0
    assert value(samples, "deltaflow_epochs_total") == 20 + 30
    assert value(samples, "deltaflow_job_duration_seconds_count", status="succeeded") == 2
    assert value(samples, "deltaflow_job_duration_seconds_bucket", status="succeeded",
                 le="+Inf") == 2  # fmt: skip
    assert value(samples, "deltaflow_job_duration_seconds_sum", status="succeeded") > 0
    assert value(samples, "deltaflow_workers_alive") == 1

    # After a restart of the API, everything read from the database is still right; the
    # HTTP counters start again (Prometheus reads that as a counter reset).
    api.stop()
    api.start()
    after = scrape(api)
    for name, labels in [
        ("deltaflow_jobs", {"status": "succeeded"}),
        ("deltaflow_epochs_total", {}),
        ("deltaflow_job_duration_seconds_count", {"status": "succeeded"}),
        ("deltaflow_workers_alive", {}),
    ]:
        assert value(after, name, **labels) == value(samples, name, **labels), name
    assert value(after, "deltaflow_http_requests_total", method="GET", route=route,
                 status="200") == 0  # fmt: skip

    # A warm stop removes the worker's heartbeat at once.
    worker.stop(timeout=30)
    assert value(scrape(api), "deltaflow_workers_alive") == 0
