"""The fast path of dashboard polls: a job's 304 and an empty curve poll answered from the
job's head (one read of the jobs row, no ORM object, no curve point read), with exactly
the answers and ETags of the full path."""

from __future__ import annotations

import re
from contextlib import contextmanager

from sqlalchemy import event

from service.timeutil import utcnow

JOBS = "/api/v1/jobs"


@contextmanager
def statements(app):
    """The SQL statements both of the app's engines execute inside the block."""
    context = app.extensions["deltaflow"]
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()))

    engines = (context.engine, context.reads)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


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
    assert re.match(r"SELECT jobs.id, jobs.status, jobs.epoch, jobs.version FROM jobs", seen[0])


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
        built = curves.curve_without_points(job_id, status, 3, 3)
        assert built == {
            "job_id": job_id,
            "status": status,
            "points": [],
            "next_since": 3,
            "complete": status == "succeeded",
        }
    assert curves.curve_without_points(job_id, "running", 3, 2) is None  # epoch 3 to read


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
