"""service.logs: one JSON object per line with the context fields, and no credential in
any line whatever a caller logs (text or JSON, exception text included)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service import logs
from service.models import Job

KEY = "dfk_abcdefgh" + "S3cretPartOfTheKey_-0123456789abcdefghijklm"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)
    logs.clear()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_credential_reaches_a_line(captured, fmt):
    logs.configure(fmt, stream=captured)
    log = logging.getLogger("tests.logs")
    log.info("headers=%s", {"Authorization": f"Bearer {KEY}"})
    log.warning("key %s and secret %s", KEY, SECRET)
    log.info("url postgresql+psycopg://deltaflow:pw0rd@db/deltaflow")
    try:
        raise ValueError(f"bad key {KEY} secret {SECRET}")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    for secret in (KEY[12:], "S3cret", SECRET[6:], "pw0rd"):
        assert secret not in text
    assert "dfk_abcdefgh" in text  # the prefix list-keys shows is kept: it names the key


def test_json_lines_carry_the_context(captured):
    logs.configure("json", stream=captured)
    logs.bind(request_id="r-1", tenant="t-1", job_id="j-1")
    logging.getLogger("tests.logs").info("epoch=%d", 3)
    logs.clear()
    logging.getLogger("tests.logs").info("no context")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["msg"] == "epoch=3"
    assert first["level"] == "INFO"
    assert first["ts"].endswith("+00:00")
    assert (first["request_id"], first["tenant"], first["job_id"]) == ("r-1", "t-1", "j-1")
    assert "request_id" not in second


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("x y", False), ("a\nb", False)],
)
def test_a_client_request_id_is_kept_only_when_tame(given, kept):
    assert (logs.request_id_from(given) == given) is kept


def test_the_api_returns_and_assigns_request_ids(client, auth):
    given = client.get("/api/v1/jobs", headers={**auth, "X-Request-ID": "mine-1"})
    assert given.headers["X-Request-ID"] == "mine-1"
    assigned = client.get("/healthz")
    assert len(assigned.headers["X-Request-ID"]) == 32


def test_a_job_keeps_the_request_id_that_submitted_it(client, auth, factory, spec):
    """Stored with the job, so whoever sends it later names that request in its message."""
    answer = client.post("/api/v1/jobs", json=spec, headers={**auth, "X-Request-ID": "submit-7"})
    assert answer.status_code == 202, answer.get_json()
    with factory() as session:
        job = session.get(Job, answer.get_json()["id"])
        assert job is not None
        assert job.request_id == "submit-7"


def test_bound_sets_the_fields_for_the_block_only():
    logs.bind(request_id="outer")
    try:
        with logs.bound(request_id="inner", job_id="j"):
            assert (logs.current("request_id"), logs.current("job_id")) == ("inner", "j")
        assert (logs.current("request_id"), logs.current("job_id")) == ("outer", None)
    finally:
        logs.clear()
