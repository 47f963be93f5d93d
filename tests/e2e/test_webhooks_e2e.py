"""Webhooks end to end on PostgreSQL and Redis: a real worker (``deltaflow worker``, which
consumes the ``webhooks`` queue) delivers to a real HTTP receiver in the test process.

Signatures are verified with the Standard Webhooks reference library; a receiver that
fails twice and then recovers gets its event on the third attempt; one that always fails
gets every retry and then a recorded failure; a redirect is not followed; after a secret
rotation both secrets verify."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from service.app import create_app
from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.http import Api
from tests.support.jobs import tiny_spec
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.integration]

RETRIES = "0.3,0.6"  # three attempts in all, quickly


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
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/target")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[dict[str, str], str]]:
        return [(headers, body) for p, headers, body in self.requests if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(production_backend):
    backend = production_backend
    overrides = {"webhook_allow_private": 1, "webhook_retry_seconds": RETRIES}
    receiver = Receiver()
    app = create_app({"settings": backend.settings(**overrides), "TESTING": True})
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "hooks")
    command = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "2"]
    worker = WorkerProcess(backend.env(**overrides), backend.log_dir, command=command)
    worker.command += ["--hostname", f"{worker.name}@%h"]
    worker.start()
    yield Api(app.test_client(), key), receiver, worker
    worker.stop(timeout=20)
    receiver.close()
    app.extensions["deltaflow"].engine.dispose()


def subscribe(api: Api, url: str, events: list[str]) -> dict:
    answer = api.post("/webhooks", json={"url": url, "events": events})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def delivered(api: Api, hook_id: str, statuses=("succeeded", "failed")) -> list[dict]:
    items = api.get(f"/webhooks/{hook_id}/deliveries").get_json()["items"]
    return items if items and all(d["status"] in statuses for d in items) else []


def test_a_finished_job_is_posted_signed_to_the_receiver(stack):
    api, receiver, worker = stack
    hook = subscribe(api, receiver.url("/ok"), ["job.succeeded"])
    job_id = api.submit(tiny_spec(20), name="signed")
    api.wait(job_id, {"succeeded"})
    (item,) = wait_until(lambda: delivered(api, hook["id"]), what="the delivery")
    assert item["status"] == "succeeded"
    assert [(a["attempt"], a["status_code"]) for a in item["attempts"]] == [(1, 200)]
    ((headers, body),) = receiver.at("/ok")
    payload = Verifier(hook["secret"]).verify(body, headers)  # raises if the signature is bad
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert headers["webhook-id"] == item["id"]
    with pytest.raises(Exception, match="signature"):
        Verifier("whsec_" + "QUJD" * 8).verify(body, headers)
    assert hook["secret"] not in worker.log()


def test_a_failing_receiver_gets_retries_then_its_event_when_it_recovers(stack):
    api, receiver, _ = stack
    flaky = subscribe(api, receiver.url("/flaky"), ["job.succeeded"])
    down = subscribe(api, receiver.url("/down"), ["job.succeeded"])
    job_id = api.submit(tiny_spec(10), name="retried")
    api.wait(job_id, {"succeeded"})

    (recovered,) = wait_until(lambda: delivered(api, flaky["id"]), what="the flaky delivery")
    assert recovered["status"] == "succeeded"
    assert [a["status_code"] for a in recovered["attempts"]] == [503, 503, 200]
    bodies = receiver.at("/flaky")
    assert len({headers["webhook-id"] for headers, _ in bodies}) == 1  # one message, retried
    for headers, body in bodies:
        Verifier(flaky["secret"]).verify(body, headers)

    (failed,) = wait_until(lambda: delivered(api, down["id"]), what="the failing delivery")
    assert failed["status"] == "failed"
    assert [a["status_code"] for a in failed["attempts"]] == [500, 500, 500]
    assert all("500" in a["error"] for a in failed["attempts"])
    assert len(receiver.at("/down")) == 3


def test_redirects_are_not_followed_and_rotated_secrets_both_verify(stack):
    api, receiver, _ = stack
    hook = subscribe(api, receiver.url("/redirect"), ["job.failed"])
    answer = api.post(f"/webhooks/{hook['id']}/test")
    assert answer.status_code == 202
    (item,) = wait_until(lambda: delivered(api, hook["id"]), what="the redirected delivery")
    assert item["status"] == "failed"
    assert all(a["status_code"] == 302 for a in item["attempts"])
    assert "redirect" in item["attempts"][0]["error"]
    assert receiver.at("/target") == []  # never followed

    ok = subscribe(api, receiver.url("/ok"), ["job.failed"])
    rotated = api.post(f"/webhooks/{ok['id']}/rotate-secret").get_json()
    before = len(receiver.at("/ok"))
    assert api.post(f"/webhooks/{ok['id']}/test").status_code == 202
    wait_until(lambda: delivered(api, ok["id"]), what="the test delivery")
    headers, body = receiver.at("/ok")[before]
    assert json.loads(body)["type"] == "webhook.test"
    assert len(headers["webhook-signature"].split(" ")) == 2
    Verifier(rotated["secret"]).verify(body, headers)
    Verifier(ok["secret"]).verify(body, headers)  # the old secret, during the grace period
