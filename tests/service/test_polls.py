"""The fast path of dashboard polls: a job's 304 and an empty curve poll answered from the
job's head (one read of the jobs row, no ORM object, no curve point read), with exactly
the answers and ETags of the full path."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from service.timeutil import utcnow

JOBS = "/api/v1/jobs"


@contextmanager
def statements(app):
    """The SQL statements SQLite runs for the app inside the block, as SQLite saw them
    (the hot path runs them on the driver's cursor, past SQLAlchemy's events)."""
    context = app.extensions["deltaflow"]
    seen: list[str] = []

    def trace(dbapi_connection, _record, _proxy):
        dbapi_connection.set_trace_callback(lambda sql: seen.append(" ".join(sql.split())))

    engines = (context.engine, context.reads)
    for engine in engines:
        event.listen(engine, "checkout", trace)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "checkout", trace)
            engine.dispose()  # no connection keeps the callback


def submit(client, auth, spec) -> str:
    response = client.post(JOBS, json=spec, headers=auth)
    assert response.status_code == 202
    return response.get_json()["id"]


def test_a_job_304_is_one_read_of_the_jobs_row(app, client, auth, spec):
    job_id = submit(client, auth, spec)
    etag = client.get(f"{JOBS}/{job_id}", headers=auth).headers["ETag"]
    client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})  # warm the key cache
    with statements(app) as seen:
        response = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["ETag"] == etag
    assert len(seen) == 1, seen
    assert re.match(r"SELECT jobs.id, jobs.status, jobs.epoch, jobs.version FROM jobs ", seen[0])


def test_an_empty_curve_poll_reads_no_point(app, client, auth, spec, add_points, set_job):
    job_id = submit(client, auth, spec)
    add_points(job_id, range(1, 6))
    full = client.get(f"{JOBS}/{job_id}/curve?since=3", headers=auth)
    assert len(full.get_json()["points"]) == 2
    client.get(f"{JOBS}/{job_id}/curve?since=5", headers=auth)  # warm the key cache
    with statements(app) as seen:
        empty = client.get(f"{JOBS}/{job_id}/curve?since=5", headers=auth)
    assert empty.status_code == 200
    assert empty.get_json() == {
        "job_id": job_id,
        "status": "queued",
        "points": [],
        "next_since": 5,
        "complete": False,
    }
    assert len(seen) == 1, seen
    assert "curve_points" not in seen[0]
    # Its ETag answers 304 until the job changes, exactly like the full path's.
    tag = empty.headers["ETag"]
    cached = client.get(f"{JOBS}/{job_id}/curve?since=5", headers={**auth, "If-None-Match": tag})
    assert cached.status_code == 304
    set_job(job_id, status="succeeded", finished_at=utcnow())
    done = client.get(f"{JOBS}/{job_id}/curve?since=5", headers={**auth, "If-None-Match": tag})
    assert done.status_code == 200
    assert done.get_json()["complete"] is True
    assert done.get_json()["points"] == []
    # A later `since` than any epoch is just as empty.
    assert client.get(f"{JOBS}/{job_id}/curve?since=99", headers=auth).get_json()["points"] == []


def test_the_fast_path_answers_the_same_as_the_full_path(client, auth, spec, add_points):
    """The empty answer from the head equals what reading the (absent) points gave."""
    from service import curves

    job_id = submit(client, auth, spec)
    add_points(job_id, range(1, 4))
    for status in ("queued", "running", "succeeded"):
        built = curves.curve_without_points(job_id, status, 3, curves.CurveAsk(since=3))
        assert built == {
            "job_id": job_id,
            "status": status,
            "points": [],
            "next_since": 3,
            "complete": status == "succeeded",
        }
    assert (
        curves.curve_without_points(job_id, "running", 3, curves.CurveAsk(since=2)) is None
    )  # epoch 3 to read


def test_another_tenants_etag_is_a_404_not_a_304(client, auth, make_key, spec):
    job_id = submit(client, auth, spec)
    etag = client.get(f"{JOBS}/{job_id}", headers=auth).headers["ETag"]
    curve_tag = client.get(f"{JOBS}/{job_id}/curve", headers=auth).headers["ETag"]
    other = {"Authorization": f"Bearer {make_key('globex')}"}
    job = client.get(f"{JOBS}/{job_id}", headers={**other, "If-None-Match": etag})
    curve = client.get(f"{JOBS}/{job_id}/curve", headers={**other, "If-None-Match": curve_tag})
    assert (job.status_code, curve.status_code) == (404, 404)
    assert client.get(f"{JOBS}/nothing", headers={**auth, "If-None-Match": "*"}).status_code == 404


def test_a_stale_etag_gets_the_full_job(client, auth, spec, set_job):
    job_id = submit(client, auth, spec)
    etag = client.get(f"{JOBS}/{job_id}", headers=auth).headers["ETag"]
    set_job(job_id, status="running", attempt=1, started_at=utcnow())
    response = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})
    assert response.status_code == 200
    assert response.get_json()["status"] == "running"
    assert response.headers["ETag"] != etag


def test_driver_errors_of_the_fast_path_are_sqlalchemys(tmp_path):
    """first_row runs on the driver's cursor; its errors still reach the error handlers
    (a database error is a 503 problem, never a 500) as SQLAlchemy's own."""
    from sqlalchemy import bindparam, select
    from sqlalchemy.exc import OperationalError

    from service.db import first_row, make_engine, make_read_engine
    from service.models import Job

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no tables
    reads = make_read_engine(engine)
    query = select(Job.id).where(Job.id == bindparam("job_id"))
    try:
        with pytest.raises(OperationalError, match="no such table"):
            first_row(reads, query, {"job_id": "x"})
    finally:
        engine.dispose()


def test_a_database_that_refuses_connections_is_sqlalchemys_error_too():
    from sqlalchemy import bindparam, select
    from sqlalchemy.exc import OperationalError

    from service.db import first_row, make_engine, make_read_engine
    from service.models import Job
    from tests.support.servers import free_port

    engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    reads = make_read_engine(engine)
    query = select(Job.id).where(Job.id == bindparam("job_id"))
    try:
        with pytest.raises(OperationalError):
            first_row(reads, query, {"job_id": "x"})
    finally:
        engine.dispose()


def test_the_early_304_leaves_refusals_and_changes_to_the_view(client, auth, spec, set_job):
    """A job poll is answered before the view parses it only when its ETag holds: a stale
    ETag gets the full job, an over-long id the view's 422, a missing job a 404."""
    job_id = submit(client, auth, spec)
    etag = client.get(f"{JOBS}/{job_id}", headers=auth).headers["ETag"]
    set_job(job_id, status="running", attempt=1, started_at=utcnow())
    stale = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": etag})
    assert (stale.status_code, stale.get_json()["status"]) == (200, "running")
    fresh = client.get(f"{JOBS}/{job_id}", headers={**auth, "If-None-Match": stale.headers["ETag"]})
    assert fresh.status_code == 304
    long_id = client.get(f"{JOBS}/{'x' * 65}", headers={**auth, "If-None-Match": etag})
    assert long_id.status_code == 422
    missing = client.get(f"{JOBS}/{'0' * 32}", headers={**auth, "If-None-Match": etag})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
