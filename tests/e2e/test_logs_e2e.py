"""JSON logs (``DELTAFLOW_LOG_FORMAT=json``) of a real ``deltaflow api`` and a real worker
on PostgreSQL and Redis: every line parses, a request id given with ``POST /jobs`` is
returned and found on the API's lines and on every worker line about that job, and no
credential appears in any line."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.jobs import tiny_spec

pytestmark = [pytest.mark.integration]

METRICS_TOKEN = "metrics-token-that-must-not-be-logged"


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        record = json.loads(line)  # fails the test on any line that is not JSON
        assert {"ts", "level", "msg"} <= set(record), line
        parsed.append(record)
    return parsed


def test_a_request_id_follows_the_job_into_the_worker_and_no_key_is_logged(
    production_backend, worker_process, tmp_path
):
    backend = production_backend
    env = backend.env(log_format="json", metrics_token=METRICS_TOKEN, webhook_allow_private=1)
    api = ApiServer(env, tmp_path / "api.log").start()
    try:
        worker = worker_process(backend, log_format="json")
        with transaction(backend.factory) as session:
            key = create_tenant_key(session, "logs")
        auth = {"Authorization": f"Bearer {key}"}

        given = "req-e2e-42"
        answer = requests.post(
            f"{api.url}/api/v1/jobs",
            json={"name": "logged", **tiny_spec(20)},
            headers={**auth, "X-Request-ID": given},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        assert answer.headers["X-Request-ID"] == given
        job_id = answer.json()["id"]

        assigned = requests.get(f"{api.url}/api/v1/jobs", headers=auth, timeout=10)
        assert re.fullmatch(r"[0-9a-f]{32}", assigned.headers["X-Request-ID"])
        hostile = {**auth, "X-Request-ID": "two words\tand a tab"}
        replaced = requests.get(f"{api.url}/api/v1/jobs", headers=hostile, timeout=10)
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])
        bad_key = {"Authorization": "Bearer dfk_notarealkeybutlookslikeone0123456789"}
        assert (
            requests.get(f"{api.url}/api/v1/jobs", headers=bad_key, timeout=10).status_code == 401
        )
        hook = requests.post(
            f"{api.url}/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]},
            headers=auth,
            timeout=10,
        ).json()
        rotated = requests.post(
            f"{api.url}/api/v1/webhooks/{hook['id']}/rotate-secret", headers=auth, timeout=10
        ).json()
        metrics = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert requests.get(f"{api.url}/metrics", headers=metrics, timeout=10).status_code == 200

        deadline = time.monotonic() + 60
        while (
            requests.get(f"{api.url}/api/v1/jobs/{job_id}", headers=auth, timeout=10).json()[
                "status"
            ]
            != "succeeded"
        ):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
        time.sleep(0.5)  # the worker's last lines of the task
    finally:
        api.stop()
    worker.stop(timeout=20)
    worker_log = worker.log()

    api_lines = json_lines(api.log_path.read_text())
    worker_lines = json_lines(worker_log)

    # The API: the access line and the submit's own lines carry the request id.
    mine = [r for r in api_lines if r.get("request_id") == given]
    assert any("POST /api/v1/jobs" in r["msg"] for r in mine), api_lines[-10:]
    # The worker: every line about the job carries the request that created it.
    about_job = [r for r in worker_lines if r.get("job_id") == job_id]
    assert about_job, worker_lines[-10:]
    assert {r.get("request_id") for r in about_job} == {given}
    assert any("claimed" in r["msg"] for r in about_job)
    assert all(r.get("worker") for r in about_job)
    assert {r.get("tenant") for r in about_job if "claimed" in r["msg"]} != {None}

    # No credential in any line, API or worker.
    everything = api.log_path.read_text() + worker_log
    secrets = [key, key[12:], METRICS_TOKEN, "notarealkeybutlookslikeone"]
    secrets += [hook["secret"][6:], rotated["secret"][6:]]
    for secret in secrets:
        assert secret not in everything
