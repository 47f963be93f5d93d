"""Retries against tiny real HTTP servers: 503/429 with Retry-After, broken connections.

The client's ``sleep`` is replaced by a recorder, so the tests check which waits were
asked for without waiting them (and without timing anything).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from deltaflow_client import Client, DeltaflowError
from deltaflow_client.transport import retry_after_seconds
from tests.client.scripted import DROP, Reply, ScriptedServer

JOB = {"id": "j1", "status": "queued"}
BUSY = {"type": "/problems/unavailable", "title": "Service Unavailable", "status": 503,
        "detail": "the database is unavailable; retry shortly", "errors": []}  # fmt: skip
LIMITED = {"type": "/problems/rate-limited", "title": "Too Many Requests", "status": 429,
           "detail": "over 20/second", "errors": []}  # fmt: skip


def client_for(server: ScriptedServer, **options) -> tuple[Client, list[float]]:
    client = Client(server.url, "dfk_test", **options)
    waits: list[float] = []
    client.transport.sleep = waits.append
    return client, waits


def test_503_then_429_then_success_waits_as_each_answer_says():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=50), usegmt=True)
    with ScriptedServer(
        Reply(503, BUSY, {"Retry-After": "2"}),
        Reply(429, LIMITED, {"Retry-After": later}),
        Reply(200, JOB),
    ) as server:
        client, waits = client_for(server)
        assert client.get_job("j1") == JOB
    assert [r.path for r in server.received] == ["/api/v1/jobs/j1"] * 3
    assert waits[0] == 2.0
    assert 0 < waits[1] <= 50  # an HTTP date: the time until then
    assert len(waits) == 2


def test_without_retry_after_the_back_off_doubles():
    with ScriptedServer(Reply(503, BUSY), Reply(503, BUSY), Reply(200, JOB)) as server:
        client, waits = client_for(server)
        client.get_job("j1")
    assert waits == [0.5, 1.0]


def test_retries_are_bounded_and_the_last_problem_is_raised():
    with ScriptedServer(*[Reply(503, BUSY, {"Retry-After": "1"})] * 3) as server:
        client, waits = client_for(server, retries=2)
        with pytest.raises(DeltaflowError) as raised:
            client.get_job("j1")
    assert len(server.received) == 3
    assert waits == [1.0, 1.0]
    error = raised.value
    assert (error.status, error.type, error.detail) == (503, BUSY["type"], BUSY["detail"])
    assert str(error) == "503 Service Unavailable: the database is unavailable; retry shortly"


def test_a_retry_after_beyond_the_bound_is_raised_not_slept():
    with ScriptedServer(Reply(429, LIMITED, {"Retry-After": "3600"})) as server:
        client, waits = client_for(server, max_retry_wait=60)
        with pytest.raises(DeltaflowError) as raised:
            client.submit_job({"network": {}})
    assert waits == []
    assert raised.value.status == 429
    assert raised.value.type == "/problems/rate-limited"


def test_a_submit_retried_after_a_503_keeps_its_idempotency_key():
    with ScriptedServer(Reply(503, BUSY, {"Retry-After": "0"}), Reply(202, JOB)) as server:
        client, _ = client_for(server)
        client.submit_job({"network": {}})
    keys = [r.headers["Idempotency-Key"] for r in server.received]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(keys[0]) == 36  # a uuid


def test_a_broken_connection_is_retried_for_a_get_and_a_keyed_submit():
    with ScriptedServer(DROP, Reply(200, JOB), DROP, Reply(202, JOB)) as server:
        client, waits = client_for(server)
        assert client.get_job("j1") == JOB
        assert client.submit_job({"network": {}}, idempotency_key="k-1") == JOB
    assert [r.method for r in server.received] == ["GET", "GET", "POST", "POST"]
    assert {r.headers["Idempotency-Key"] for r in server.received[2:]} == {"k-1"}
    assert waits == [0.5, 0.5]


def test_a_broken_connection_is_not_retried_for_a_plain_post(tmp_path):
    path = tmp_path / "xor.csv"
    path.write_text("a,b,target\n0,0,0\n1,1,0\n")
    with ScriptedServer(DROP, Reply(201, {"id": "d1"})) as server:
        client, waits = client_for(server)
        with pytest.raises(DeltaflowError) as raised:
            client.upload_dataset(path)  # may have been stored: repeating could store it twice
    assert len(server.received) == 1
    assert waits == []
    assert raised.value.status is None
    assert "no answer" in str(raised.value)


def test_an_answer_that_is_not_json_names_the_url():
    with ScriptedServer(Reply(200, None)) as server:  # "null": JSON, but not an object
        client, _ = client_for(server)
        with pytest.raises(DeltaflowError, match="did not answer a JSON object"):
            client.get_job("j1")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("0", 0.0), ("soon", None), (None, None), ("Wed, 01 Jan 2020 00:00:00 GMT", 0.0)],
)
def test_retry_after_parsing(header, expected):
    assert retry_after_seconds(header) == expected
