"""Running Deltaflow in production (issue 16), end to end on PostgreSQL and Redis, with one
real ``deltaflow api`` (gunicorn, two processes; JSON logs, a metrics token) and one real
``deltaflow worker`` (JSON logs; it consumes the ``webhooks`` queue) shared by the module,
and a real HTTP receiver for webhooks in the test process. The tests run in file order.

- ``GET /metrics``: parsed with prometheus_client's parser; every value checked against the
  database or the requests made (summed over both gunicorn processes) — and again right
  after the API restarts.
- JSON logs: every line of both processes parses; a request id given with ``POST /jobs``
  is returned and found on the API's lines and on every worker line of that job.
- Webhooks: signatures verified with the Standard Webhooks reference library; a receiver
  that fails twice then recovers gets its event on the third attempt; one that always
  fails gets every retry and then a recorded failure; a redirect is not followed; after a
  secret rotation both secrets verify.
- Finally: no credential (API key, bearer token, webhook secret) in any line, and a warm
  stop takes the worker out of ``deltaflow_workers_alive`` at once.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook as Verifier

from service.db import transaction
from service.models import Job
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.jobs import diverging_spec, tiny_spec
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration]

METRICS_TOKEN = "metrics-token-that-must-not-be-logged"
RETRIES = "0.3,0.6"  # three webhook attempts in all, quickly
REQUEST_ID = "req-e2e-42"


# --- a webhook receiver -------------------------------------------------------------------


class Receiver:
    """A local HTTP receiver: each path answers as scripted and every request is kept."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.failures = {"/flaky": 2}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.requests.append((self.path, dict(self.headers), body))
                status = 200
                if self.path == "/down":
                    status = 500
                elif self.path == "/flaky" and receiver.failures["/flaky"] > 0:
                    receiver.failures["/flaky"] -= 1
                    status = 503
                elif self.path == "/redirect":
                    status = 302
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/target")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[dict[str, str], str]]:
        return [(headers, body) for p, headers, body in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the module's stack -------------------------------------------------------------------


@dataclass
class Stack:
    backend: Any
    api: ApiServer
    worker: WorkerProcess
    receiver: Receiver
    key: str
    secrets: list[str] = field(default_factory=list)  # webhook secrets seen, for the log check

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, headers: dict[str, str] | None = None) -> requests.Response:
        headers = {**self.auth, **(headers or {})}
        return requests.get(f"{self.api.url}/api/v1{path}", headers=headers, timeout=10)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None):
        headers = {**self.auth, **(headers or {})}
        return requests.post(f"{self.api.url}/api/v1{path}", json=body, headers=headers, timeout=10)

    def submit(self, epochs: int, name: str, **headers: str) -> requests.Response:
        answer = self.post("/jobs", {"name": name, **tiny_spec(epochs)}, headers)
        assert answer.status_code == 202, answer.text
        return answer

    def wait_job(self, job_id: str, status: str = "succeeded") -> None:
        wait_until(lambda: self.get(f"/jobs/{job_id}").json()["status"] == status, what=job_id)

    def subscribe(self, path: str, events: list[str]) -> dict:
        answer = self.post("/webhooks", {"url": self.receiver.url(path), "events": events})
        assert answer.status_code == 201, answer.text
        hook = answer.json()
        self.secrets.append(hook["secret"])
        return hook

    def delivered(self, hook_id: str) -> list[dict]:
        items = self.get(f"/webhooks/{hook_id}/deliveries").json()["items"]
        done = items and all(d["status"] in ("succeeded", "failed") for d in items)
        return items if done else []

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        answer = requests.get(f"{self.api.url}/metrics", headers=token, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def json_lines(text: str) -> list[dict]:
    parsed = []
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)  # fails the test on any line that is not JSON
            assert {"ts", "level", "msg"} <= set(record), line
            parsed.append(record)
    return parsed


@pytest.fixture(scope="module")
def stack(production_backend, tmp_path_factory):
    backend = production_backend
    env = backend.env(
        log_format="json",
        metrics_token=METRICS_TOKEN,
        webhook_allow_private=1,
        webhook_retry_seconds=RETRIES,
    )
    log = tmp_path_factory.mktemp("api") / "api.log"
    api = ApiServer(env, log, "--workers", "2", "--threads", "4").start()
    command = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "2"]
    worker = WorkerProcess(env, backend.log_dir, command=command)
    worker.command += ["--hostname", f"{worker.name}@%h"]  # started by the first test
    receiver = Receiver()
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "ops")
    yield Stack(backend, api, worker, receiver, key)
    worker.stop(timeout=20)
    api.stop()
    receiver.close()


# --- metrics ------------------------------------------------------------------------------


def db_counts(factory) -> dict[str, int]:
    with factory() as session:
        return dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def test_metrics_are_the_databases_and_the_requests(stack):
    api, factory = stack.api, stack.backend.factory
    assert requests.get(f"{api.url}/metrics", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(f"{api.url}/metrics", headers=wrong, timeout=10).status_code == 401

    # Two jobs queued with no worker: the queue depth and its oldest age come from the DB.
    ids = [stack.submit(epochs, "metrics").json()["id"] for epochs in (20, 30)]
    samples = stack.scrape()
    assert value(samples, "deltaflow_queue_depth", queue="interactive") == 2
    assert value(samples, "deltaflow_queue_depth", queue="batch") == 0
    assert value(samples, "deltaflow_queue_oldest_age_seconds", queue="interactive") > 0
    assert value(samples, "deltaflow_jobs", status="queued") == 2
    assert value(samples, "deltaflow_workers_alive") == 0

    # Many GETs, answered by either of the two gunicorn processes: the scrape sums both.
    polls = 12
    for _ in range(polls):
        assert stack.get(f"/jobs/{ids[0]}").status_code == 200
    assert stack.get(f"/jobs/{'0' * 32}").status_code == 404
    assert requests.get(f"{api.url}/no/such/path", timeout=10).status_code == 404

    stack.worker.start()
    wait_until(lambda: db_counts(factory).get("succeeded", 0) == 2, what="two jobs")
    wait_until(lambda: value(stack.scrape(), "deltaflow_workers_alive") == 1, what="heartbeat")

    samples = stack.scrape()
    route = "/api/v1/jobs/<job_id>"
    http = "deltaflow_http_requests_total"
    assert value(samples, http, method="GET", route=route, status="200") == polls
    assert value(samples, http, method="GET", route=route, status="404") == 1
    assert value(samples, http, method="GET", route="unmatched", status="404") == 1
    assert value(samples, http, method="POST", route="/api/v1/jobs", status="202") == 2
    count = "deltaflow_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route=route, status="200") == polls
    for status, n in {"queued": 0, "running": 0, "succeeded": 2}.items():
        assert value(samples, "deltaflow_jobs", status=status) == n
        assert db_counts(factory).get(status, 0) == n
    assert value(samples, "deltaflow_queue_depth", queue="interactive") == 0
    assert value(samples, "deltaflow_epochs_total") == 20 + 30
    duration = "deltaflow_job_duration_seconds"
    assert value(samples, duration + "_count", status="succeeded") == 2
    assert value(samples, duration + "_bucket", status="succeeded", le="+Inf") == 2
    assert value(samples, duration + "_sum", status="succeeded") > 0
    assert value(samples, "deltaflow_workers_alive") == 1

    # Right after a restart of the API, everything read from the database is still right;
    # the HTTP counters start again (Prometheus reads that as a counter reset).
    api.stop()
    api.start()
    after = stack.scrape()
    for name, labels in [
        ("deltaflow_jobs", {"status": "succeeded"}),
        ("deltaflow_epochs_total", {}),
        (duration + "_count", {"status": "succeeded"}),
        ("deltaflow_workers_alive", {}),
    ]:
        assert value(after, name, **labels) == value(samples, name, **labels), name
    assert value(after, http, method="GET", route=route, status="200") == 0


# --- JSON logs ----------------------------------------------------------------------------


def test_request_ids_are_returned_and_follow_the_job_into_the_worker(stack):
    answer = stack.submit(20, "logged", **{"X-Request-ID": REQUEST_ID})
    assert answer.headers["X-Request-ID"] == REQUEST_ID
    job_id = answer.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", stack.get("/jobs").headers["X-Request-ID"])
    hostile = stack.get("/jobs", headers={"X-Request-ID": "two words\tand a tab"})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])
    stack.wait_job(job_id)

    def about_job() -> list[dict]:
        lines = [r for r in json_lines(stack.worker.log()) if r.get("job_id") == job_id]
        return lines if any("succeeded in" in r["msg"] for r in lines) else []

    lines = wait_until(about_job, what="the task's last line")
    assert {r.get("request_id") for r in lines} == {REQUEST_ID}
    assert any("claimed" in r["msg"] for r in lines)
    assert all(r.get("worker") for r in lines)
    assert all(r.get("tenant") for r in lines if "claimed" in r["msg"])
    api_lines = [
        r for r in json_lines(stack.api.log_path.read_text()) if r.get("request_id") == REQUEST_ID
    ]
    assert any("POST /api/v1/jobs" in r["msg"] for r in api_lines)


# --- webhooks -----------------------------------------------------------------------------


def test_a_finished_job_is_posted_signed_to_the_receiver(stack):
    hook = stack.subscribe("/ok", ["job.succeeded"])
    job_id = stack.submit(10, "signed").json()["id"]
    stack.wait_job(job_id)
    (item,) = wait_until(lambda: stack.delivered(hook["id"]), what="the delivery")
    assert item["status"] == "succeeded"
    assert [(a["attempt"], a["status_code"]) for a in item["attempts"]] == [(1, 200)]
    ((headers, body),) = stack.receiver.at("/ok")
    payload = Verifier(hook["secret"]).verify(body, headers)  # raises if the signature is bad
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert headers["webhook-id"] == item["id"]
    with pytest.raises(Exception, match="signature"):
        Verifier("whsec_" + "QUJD" * 8).verify(body, headers)


def test_a_failing_receiver_gets_retries_then_its_event_when_it_recovers(stack):
    flaky = stack.subscribe("/flaky", ["job.failed"])
    down = stack.subscribe("/down", ["job.failed"])
    answer = stack.post("/jobs", {"name": "diverges", **diverging_spec()})
    assert answer.status_code == 202, answer.text
    stack.wait_job(answer.json()["id"], "failed")

    (recovered,) = wait_until(lambda: stack.delivered(flaky["id"]), what="the flaky delivery")
    assert recovered["status"] == "succeeded"
    assert [a["status_code"] for a in recovered["attempts"]] == [503, 503, 200]
    bodies = stack.receiver.at("/flaky")
    assert len({headers["webhook-id"] for headers, _ in bodies}) == 1  # one message, retried
    for headers, body in bodies:
        Verifier(flaky["secret"]).verify(body, headers)

    (failed,) = wait_until(lambda: stack.delivered(down["id"]), what="the failing delivery")
    assert failed["status"] == "failed"
    assert [a["status_code"] for a in failed["attempts"]] == [500, 500, 500]
    assert all("500" in a["error"] for a in failed["attempts"])
    assert len(stack.receiver.at("/down")) == 3


def test_redirects_are_not_followed_and_rotated_secrets_both_verify(stack):
    hook = stack.subscribe("/redirect", ["batch.completed"])
    assert stack.post(f"/webhooks/{hook['id']}/test").status_code == 202
    (item,) = wait_until(lambda: stack.delivered(hook["id"]), what="the redirected delivery")
    assert item["status"] == "failed"
    assert all(a["status_code"] == 302 for a in item["attempts"])
    assert "redirect" in item["attempts"][0]["error"]
    assert stack.receiver.at("/target") == []  # never followed

    ok = stack.subscribe("/ok", ["batch.completed"])
    rotated = stack.post(f"/webhooks/{ok['id']}/rotate-secret").json()
    stack.secrets.append(rotated["secret"])
    before = len(stack.receiver.at("/ok"))
    assert stack.post(f"/webhooks/{ok['id']}/test").status_code == 202
    wait_until(lambda: stack.delivered(ok["id"]), what="the test delivery")
    headers, body = stack.receiver.at("/ok")[before]
    assert json.loads(body)["type"] == "webhook.test"
    assert len(headers["webhook-signature"].split(" ")) == 2
    Verifier(rotated["secret"]).verify(body, headers)
    Verifier(ok["secret"]).verify(body, headers)  # the old secret, during the grace period


# --- last: no credential in any line; a warm stop --------------------------------------------


def test_no_credential_in_any_line_and_a_stopped_worker_is_not_alive(stack):
    bad_key = {"Authorization": "Bearer dfk_notarealkeybutlookslikeone0123456789"}
    assert (
        requests.get(f"{stack.api.url}/api/v1/jobs", headers=bad_key, timeout=10).status_code == 401
    )
    stack.worker.stop(timeout=30)
    assert value(stack.scrape(), "deltaflow_workers_alive") == 0

    everything = stack.api.log_path.read_text() + stack.worker.log()
    json_lines(everything)  # every line of both processes is JSON
    secrets = [stack.key, stack.key[12:], METRICS_TOKEN, "notarealkeybutlookslikeone"]
    secrets += [secret.removeprefix("whsec_") for secret in stack.secrets]
    assert len(secrets) >= 9
    for secret in secrets:
        assert secret not in everything
