"""A request that runs out of time answers 503 problem+json, never HTML (issue 11).

Every API request runs under ``DELTAFLOW_REQUEST_TIMEOUT_SECONDS`` (``service.deadlines``):
the synchronous computations check it as they go, every statement of the request's
session checks it first, and on PostgreSQL each statement is bounded by it too. Here the
setting is lowered to one second (or half of one) and each request is given honest work
many times longer than that: a gradient check whose budget was raised for the test, a CSV
upload of 200,000 rows, a read that waits on a table lock. Each answers 503
problem+json with ``Retry-After``, stores nothing, and the API answers normally after.
The last test sends the same requests to a real ``deltaflow api`` (gunicorn + waitress)
on both backends.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest
import requests
from sqlalchemy import create_engine, text

from service import deadlines
from service.app import create_app
from service.db import make_engine, transaction
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.hostile import SLOW_LIMITS, assert_problem, slow_csv, slow_gradient_check

API = "/api/v1"
DEADLINE_SECONDS = 1.0
# The slow requests (tests/support/hostile.py): a gradient check of 7.9e10 multiply-adds
# (74 s here at load average 8, benchmarks/deadline.py --deadlines 120) and a CSV upload of
# 200,000 rows (~6 s to parse): many times the deadline even on a fast, idle machine.


def assert_timed_out(response) -> dict:  # type: ignore[no-untyped-def]
    problem = assert_problem(response, 503)
    assert problem["type"] == "/problems/request-timeout"
    assert "DELTAFLOW_REQUEST_TIMEOUT_SECONDS" in problem["detail"]
    assert response.headers["Retry-After"] == "5"
    return problem


@pytest.fixture
def slow_app(backend_app):  # type: ignore[no-untyped-def]
    """``(app, auth)`` on SQLite and PostgreSQL with a one-second request deadline."""
    app, auth = backend_app
    settings = app.extensions["deltaflow"].settings
    limits = dataclasses.replace(settings.limits, **SLOW_LIMITS)
    slow = create_app(
        {
            "settings": dataclasses.replace(
                settings, request_timeout_seconds=DEADLINE_SECONDS, limits=limits
            )
        }
    )
    yield slow, auth
    slow.extensions["deltaflow"].engine.dispose()


def stored(client, auth) -> tuple[list, int]:  # type: ignore[no-untyped-def]
    datasets = client.get(API + "/datasets", headers=auth).get_json()["items"]
    usage = client.get(API + "/quota", headers=auth).get_json()["usage"]["storage_bytes"]
    return datasets, usage


def test_a_gradient_check_past_the_deadline_answers_503(slow_app):
    app, auth = slow_app
    client = app.test_client()
    response = client.post(
        API + "/backprop/gradient-check", json=slow_gradient_check(), headers=auth
    )
    assert "in the gradient check" in assert_timed_out(response)["detail"]
    assert client.get("/healthz").status_code == 200
    small = {**slow_gradient_check(), "X": [[0.0] * 20, [1.0] * 20], "y": [0, 1]}
    small["network"] = {**small["network"], "layers": [{"units": 3, "activation": "tanh"}]}
    assert (
        client.post(API + "/backprop/gradient-check", json=small, headers=auth).status_code == 200
    )


def test_an_upload_past_the_deadline_stores_nothing(slow_app):
    app, auth = slow_app
    client = app.test_client()
    before = stored(client, auth)
    # The multipart body built here: the test client's own builder leaves its spooled
    # temporary file of a large upload unclosed (a ResourceWarning, with or without a deadline).
    boundary = "deltaflow-deadline"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nclassification\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + slow_csv()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        API + "/datasets",
        data=body,
        headers=auth,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert "reading the CSV file" in assert_timed_out(response)["detail"]
    assert stored(client, auth) == before  # no dataset row, no blob, no storage counted
    assert client.get("/healthz").status_code == 200
    small = {"name": "small", "task": "classification", "X": [[0.0], [1.0]], "y": ["a", "b"]}
    assert client.post(API + "/datasets", json=small, headers=auth).status_code == 201


@pytest.mark.integration
@pytest.mark.parametrize("backend_app", ["postgresql"], indirect=True)
def test_a_statement_waiting_on_a_lock_past_the_deadline_answers_503(slow_app):
    """PostgreSQL: a read blocked by another transaction's table lock is cancelled by
    ``statement_timeout`` (the deadline) and answered 503; the lock's holder is unharmed."""
    app, auth = slow_app
    engine = app.extensions["deltaflow"].engine
    assert engine.dialect.name == "postgresql"
    client = app.test_client()
    assert client.get(API + "/datasets", headers=auth).status_code == 200
    holder = create_engine(engine.url)
    try:
        with holder.connect() as connection:
            connection.execute(text("LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE"))
            response = client.get(API + "/datasets", headers=auth)
            assert "database statement" in assert_timed_out(response)["detail"]
            connection.rollback()
    finally:
        holder.dispose()
    assert client.get(API + "/datasets", headers=auth).status_code == 200


# --- the real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_server(backend, tmp_path_factory):
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "deadline")
    env = backend.env(
        request_timeout_seconds=DEADLINE_SECONDS,
        max_gradcheck_parameters=SLOW_LIMITS["gradcheck_parameters"],
        max_gradcheck_work=SLOW_LIMITS["gradcheck_work"],
    )
    server = ApiServer(env, tmp_path_factory.mktemp("api") / "api.log").start()
    yield server, {"Authorization": f"Bearer {key}"}
    server.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_the_real_server_answers_503_problem_json_past_the_deadline(backend, slow_server):
    server, auth = slow_server
    api = f"{server.url}{API}"
    requests_ = [
        ("gradient check", "post", "/backprop/gradient-check", {"json": slow_gradient_check()}),
        ("CSV upload", "post", "/datasets", {"files": {"file": ("slow.csv", slow_csv())}}),
    ]
    # Two at once: both threads of a process time out on their own, neither waits for the other.
    answers: dict[str, requests.Response] = {}

    def send(name: str, method: str, path: str, kwargs: dict) -> None:
        answers[name] = requests.request(method, api + path, headers=auth, timeout=120, **kwargs)

    threads = [threading.Thread(target=send, args=r) for r in requests_]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, *_ in requests_:
        response = answers[name]
        assert response.status_code == 503, (name, response.status_code, response.text[:300])
        assert response.headers["Content-Type"] == "application/problem+json", name
        assert int(response.headers["Content-Length"]) == len(response.content), name
        problem = response.json()  # whole, not half-written
        assert problem["type"] == "/problems/request-timeout", name
        assert response.headers["Retry-After"] == "5"
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{api}/datasets", headers=auth, timeout=10).json()["items"] == []
    usage = requests.get(f"{api}/quota", headers=auth, timeout=10).json()["usage"]
    assert usage["storage_bytes"] == 0
    assert server.process is not None
    assert server.process.poll() is None  # the server lives, and no worker was killed
    assert "WORKER TIMEOUT" not in server.log()


# --- the deadline's own rules ----------------------------------------------------------------


def test_a_statement_past_the_deadline_is_refused_and_a_commit_ends_the_deadline(tmp_path):
    """Past the deadline the next statement raises (its transaction then rolls back); once
    the request's session commits, the deadline is off, so what was stored is answered 2xx
    (a job's dispatch pass after its commit is never cut into a 503 a client would retry)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    deadlines.watch(engine)
    try:
        with deadlines.deadline(1e-9):
            with pytest.raises(deadlines.DeadlineExceeded), engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        with deadlines.deadline(3600):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            left = deadlines.remaining()
            assert left is not None
            assert left > 0  # a read alone keeps it
            with engine.begin() as connection:
                connection.execute(text("CREATE TABLE t (x INTEGER)"))
            assert deadlines.remaining() is None
        assert deadlines.remaining() is None  # none outside a request
    finally:
        engine.dispose()
