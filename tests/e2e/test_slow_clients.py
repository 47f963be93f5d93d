"""Slow clients cannot starve others (issue 11): ten clients trickle request bodies, one
byte a second, into a real ``deltaflow api`` process — the server model of ``deltaflow up``
and of production (``service.serving``) — while ``/healthz`` and an authenticated GET
are asked again and again. Every one of those must be answered while every trickle is
still unfinished; the latencies are printed, never asserted.
"""

from __future__ import annotations

import http.client
import sys
import time

import pytest

from service.config import Limits
from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.jobs import insert_job, tiny_spec
from tests.support.trickle import Trickler, post_too_large, probe_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 10
BODY_BYTES = 10  # one a second: each trickle takes about ten seconds
INTERVAL = 1.0
ROUNDS = 5  # probe pairs asked while the trickles run


@pytest.fixture(scope="module")
def served(backend, tmp_path_factory):
    """The API as ``deltaflow up`` runs it, on the module's backend; a key and a job."""
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "slow-clients")
    job_id = insert_job(backend.factory, tiny_spec(), tenant="slow-clients")
    server = ApiServer(backend.env(), tmp_path_factory.mktemp("api") / "api.log").start()
    yield server, key, job_id
    server.stop()


def test_healthz_and_an_authenticated_get_answer_while_ten_clients_trickle(backend, served, capsys):
    server, key, job_id = served
    auth = {"Authorization": f"Bearer {key}"}
    tricklers = [
        Trickler(server.host, server.port, "/api/v1/jobs", auth, BODY_BYTES, INTERVAL)
        for _ in range(CLIENTS)
    ]
    for trickler in tricklers:
        trickler.start()
    try:
        wait_until_all_are_sending(tricklers)
        latencies: dict[str, list[float]] = {"healthz": [], "job": []}
        for _ in range(ROUNDS):
            for name, path, headers in (
                ("healthz", "/healthz", {}),
                ("job", f"/api/v1/jobs/{job_id}", auth),
            ):
                # The answer must come while every trickle is still under way.
                status, seconds = probe_status(
                    server.host, server.port, path, headers, timeout=BODY_BYTES * INTERVAL
                )
                unfinished = sum(t.sending and t.sent < t.total for t in tricklers)
                assert status == 200, f"{name}: no answer ({server.log()})"
                assert unfinished == CLIENTS, f"{name} answered only after a trickle ended"
                latencies[name].append(seconds)
    finally:
        for trickler in tricklers:
            trickler.join(timeout=BODY_BYTES * INTERVAL + 30)
            trickler.stop()
    report = [
        f"{backend.kind}: {CLIENTS} clients trickling {BODY_BYTES}-byte bodies, one byte every "
        f"{INTERVAL:g} s; answers while they trickled (ms):"
    ]
    for name, seconds in latencies.items():
        report.append(f"  {name}: " + " ".join(f"{s * 1000:.1f}" for s in seconds))
    with capsys.disabled():  # shown in every run, not only with -s
        sys.stdout.write("\n" + "\n".join(report) + "\n")
    # The tricklers were served too, once their bodies were complete (a JSON string is
    # not a job: 422), so the server read them rather than dropping them.
    assert [t.status for t in tricklers] == [422] * CLIENTS, [t.status for t in tricklers]


def wait_until_all_are_sending(tricklers: list[Trickler]) -> None:
    """Every trickler has connected, sent its headers and its first body byte."""
    deadline = time.monotonic() + 30
    while not all(t.sent >= 1 for t in tricklers):
        assert time.monotonic() < deadline, [t.status for t in tricklers]
        time.sleep(0.05)


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    """The server answers 413 problem+json from the Content-Length alone."""
    server, key, _job_id = served
    limit = Limits().body_bytes
    status, head, problem = post_too_large(server.host, server.port, key, limit + 1)
    assert status == 413
    assert b"Content-Type: application/problem+json" in head
    assert problem["status"] == 413
    assert "DELTAFLOW_MAX_BODY_BYTES" in problem["detail"]


def test_a_304_keeps_the_connection_open(served):
    """A poll answered 304 has no body; the connection stays open for the next poll."""
    server, key, job_id = served
    auth = {"Authorization": f"Bearer {key}"}
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", f"/api/v1/jobs/{job_id}", headers=auth)
        first = connection.getresponse()
        first.read()
        etag = first.getheader("ETag")
        sockets = []
        for _ in range(3):
            connection.request(
                "GET", f"/api/v1/jobs/{job_id}", headers={**auth, "If-None-Match": etag}
            )
            answer = connection.getresponse()
            assert answer.read() == b""
            assert answer.status == 304
            assert answer.getheader("Connection") is None
            assert not answer.will_close
            sockets.append(connection.sock)
        assert sockets[0] is not None
        assert all(s is sockets[0] for s in sockets)  # one connection served them all
    finally:
        connection.close()
