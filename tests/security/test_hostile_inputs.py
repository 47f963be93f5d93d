"""Bad input is 4xx, never 5xx (issue 11): each finding of the hostile tenant, on SQLite
and PostgreSQL (``backend_app``), with nothing stored and the API still answering.

The findings: JSON nested 5,000 deep, grid values nested 900 deep, a 2,000-segment dotted
path, ``randint [0, 1e30]``, ``uniform ±1e308``, cursors dated year 1 or 9999,
``since=2^70`` (SQLite) and ``2^40`` (PostgreSQL), NUL bytes in names, ids and cursors
(PostgreSQL); plus a text/plain body (415, not 422) and the server's own errors as
problem+json, never text or HTML.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.db import make_engine, make_sessionmaker
from service.models import Batch, Dataset, Job

API = "/api/v1"
SPEC = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40},
    "training": {"epochs": 2},
}


@pytest.fixture
def hostile(backend_app):
    """``(client, auth, stored)``: ``stored()`` counts jobs, batches and datasets."""
    app, auth = backend_app
    engine = make_engine(app.extensions["deltaflow"].settings.database_url)
    sessions = make_sessionmaker(engine)

    def stored() -> tuple[int, ...]:
        with sessions() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(model))
                for model in (Job, Batch, Dataset)
            )

    yield app.test_client(), auth, stored
    engine.dispose()


def assert_4xx(response, status: int, loc_start: list | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    if loc_start is not None:
        assert body["errors"], body
        assert body["errors"][0]["loc"][: len(loc_start)] == loc_start, body
    return body


def still_healthy(client, auth) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get(f"{API}/jobs", headers=auth).status_code == 200


def post_raw(client, auth, path: str, text: str, content_type: str = "application/json"):
    return client.post(API + path, data=text.encode(), headers=auth, content_type=content_type)


# --- JSON depth -------------------------------------------------------------------------


def test_json_nested_5000_deep_is_a_422(hostile):
    client, auth, stored = hostile
    before = stored()
    body = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    for path in ("/jobs", "/batches", "/datasets", "/backprop/trace"):
        problem = assert_4xx(post_raw(client, auth, path, body), 422, ["body"])
        assert "DELTAFLOW_MAX_JSON_DEPTH" in problem["detail"]
    assert stored() == before
    still_healthy(client, auth)


def test_grid_values_nested_900_deep_are_a_422(hostile):
    client, auth, stored = hostile
    before = stored()
    deep = "[" * 900 + "1" + "]" * 900
    body = json.dumps({"name": "deep", "base": SPEC, "grid": {"training.epochs": ["X"]}})
    body = body.replace('["X"]', deep)
    problem = assert_4xx(post_raw(client, auth, "/batches", body), 422)
    assert "DELTAFLOW_MAX_JSON_DEPTH" in problem["detail"]
    assert stored() == before
    still_healthy(client, auth)


def test_brackets_inside_strings_do_not_count_as_depth(hostile):
    client, auth, _ = hostile
    spec = {**SPEC, "name": "[" * 90 + '\\"' + "{" * 90}
    response = client.post(f"{API}/jobs", json=spec, headers=auth)
    assert response.status_code == 202, response.get_json()


# --- sweeps -----------------------------------------------------------------------------


def test_a_2000_segment_dotted_path_is_a_422(hostile):
    client, auth, stored = hostile
    before = stored()
    path = ".".join(["network"] + ["a"] * 1999)
    batch = {"name": "long", "base": SPEC, "grid": {path: [1, 2]}}
    assert_4xx(client.post(f"{API}/batches", json=batch, headers=auth), 422, ["body", "grid"])
    batch = {"name": "long", "base": SPEC, "random": {path: {"uniform": [0, 1]}}, "samples": 2}
    assert_4xx(client.post(f"{API}/batches", json=batch, headers=auth), 422, ["body"])
    assert stored() == before
    still_healthy(client, auth)


BAD_BOUNDS = [
    ({"randint": [0, 10**30]}, "training.seed"),
    ({"randint": [0, 1e30]}, "training.seed"),
    ({"randint": [-(10**400), 1]}, "training.seed"),
    ({"uniform": [-1e308, 1e308]}, "training.l2"),
    ({"uniform": [0, 10**400]}, "training.l2"),
    ({"loguniform": [1e-308, 1e308]}, "training.optimizer.learning_rate"),
]


def test_sweep_bounds_must_be_finite_and_fit(hostile):
    client, auth, stored = hostile
    before = stored()
    for dist, path in BAD_BOUNDS:
        random = {"name": "b", "base": SPEC, "random": {path: dist}, "samples": 3, "seed": 1}
        space = {"name": "tpe", "space": {path: dist}, "trials": 3, "seed": 1}
        for batch in (random, {"name": "t", "base": SPEC, "search": space}):
            response = client.post(f"{API}/batches", json=batch, headers=auth)
            assert response.status_code in (400, 422), (dist, response.get_data(as_text=True))
            assert response.mimetype == "application/problem+json"
    assert stored() == before
    still_healthy(client, auth)


# --- cursors and integer bounds ---------------------------------------------------------


def cursor(stamp: str, item_id: str = "x") -> str:
    raw = json.dumps([stamp, item_id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS = [
    cursor("0001-01-01T00:00:00+05:00"),
    cursor("0001-01-01T00:00:00"),
    cursor("9999-12-31T23:59:59-05:00"),
    cursor("9999-12-31T23:59:59"),
    cursor("2026-01-01T00:00:00", "a\x00b"),
    cursor("2026-01-01T00:00:00", 5),  # type: ignore[arg-type]
    "%00",
    "not base64 at all!",
]


def test_bad_cursors_are_422(hostile):
    client, auth, _ = hostile
    for path in ("/jobs", "/datasets", "/batches"):
        for value in BAD_CURSORS:
            response = client.get(f"{API}{path}?cursor={quote(value, safe='%')}", headers=auth)
            assert_4xx(response, 422, ["query"])
    still_healthy(client, auth)


def test_since_beyond_the_database_integer_is_a_422(hostile):
    client, auth, _ = hostile
    job_id = client.post(f"{API}/jobs", json=SPEC, headers=auth).get_json()["id"]
    for since in (2**31, 2**40, 2**70):
        for name in ("since", "from_epoch", "to_epoch", "max_points"):
            response = client.get(f"{API}/jobs/{job_id}/curve?{name}={since}", headers=auth)
            assert_4xx(response, 422, ["query"])
    response = client.get(f"{API}/jobs/{job_id}/curve?since={2**31 - 1}", headers=auth)
    assert response.status_code == 200, response.get_json()
    still_healthy(client, auth)


# --- NUL --------------------------------------------------------------------------------


def test_nul_in_names_is_a_422_naming_the_field(hostile):
    client, auth, stored = hostile
    before = stored()
    response = client.post(f"{API}/jobs", json={**SPEC, "name": "a\x00b"}, headers=auth)
    assert_4xx(response, 422, ["body", "name"])
    body = {"name": "a\x00", "X": [[0.0], [1.0]], "y": [0, 1]}
    assert_4xx(client.post(f"{API}/datasets", json=body, headers=auth), 422, ["body", "name"])
    batch = {"name": "\x00", "base": SPEC, "grid": {"training.epochs": [1, 2]}}
    assert_4xx(client.post(f"{API}/batches", json=batch, headers=auth), 422, ["body", "name"])
    key_nul = {**SPEC, "training": {"epochs\x00": 2}}
    assert_4xx(client.post(f"{API}/jobs", json=key_nul, headers=auth), 422, ["body", "training"])
    assert stored() == before
    still_healthy(client, auth)


NUL_URLS = [
    "/jobs/a%00b",
    "/jobs/a%00b/curve",
    "/datasets/%00",
    "/batches/x%00",
    "/jobs?status=queued%00",
    "/jobs?batch_id=%00",
    "/jobs?cursor=ab%00",
]


def test_nul_in_ids_and_queries_is_a_422(hostile):
    client, auth, _ = hostile
    for url in NUL_URLS:
        assert_4xx(client.get(API + url, headers=auth), 422)
    response = client.post(f"{API}/jobs", json=SPEC, headers={**auth, "Idempotency-Key": "k\x00"})
    assert_4xx(response, 422, ["header", "Idempotency-Key"])
    still_healthy(client, auth)


@pytest.mark.parametrize("key", ["k\x01", "k\x7f", "clé", "new\x1bline"])
def test_an_idempotency_key_is_printable_ascii(hostile, key):
    # It is stored, compared and written to logs: control and non-ASCII characters are refused.
    client, auth, stored = hostile
    before = stored()
    response = client.post(f"{API}/jobs", json=SPEC, headers={**auth, "Idempotency-Key": key})
    assert_4xx(response, 422, ["header", "Idempotency-Key"])
    assert stored() == before
    fine = client.post(f"{API}/jobs", json=SPEC, headers={**auth, "Idempotency-Key": "a b-1"})
    assert fine.status_code == 202, fine.get_data(as_text=True)[:300]


# --- content types and sizes ------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_is_415(hostile, content_type):
    client, auth, stored = hostile
    before = stored()
    response = post_raw(client, auth, "/jobs", json.dumps(SPEC), content_type)
    assert_4xx(response, 415)
    assert stored() == before


def test_every_operation_that_takes_a_body_answers_and_documents_415(client, auth):
    """Each POST refuses a text/plain body with 415 before its view (an unknown id is never
    looked up), and the OpenAPI document lists that 415 for the operation."""
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]
    posts = [path for path, item in paths.items() if "post" in item]
    assert len(posts) >= 12
    for path in posts:
        assert "415" in paths[path]["post"]["responses"], path
        url = re.sub(r"\{[^}]+\}", "0" * 32, path)
        response = client.post(url, data="{}", content_type="text/plain", headers=auth)
        assert_4xx(response, 415)


def test_a_json_body_over_its_limit_is_413_naming_it(settings, make_key):
    limits = dataclasses.replace(settings.limits, json_body_bytes=1000)
    app = create_app({"settings": dataclasses.replace(settings, limits=limits)})
    client, auth = app.test_client(), {"Authorization": f"Bearer {make_key()}"}
    body = {"name": "big", "X": [[0.5] * 10] * 40, "y": [0, 1] * 20}
    problem = assert_4xx(client.post(f"{API}/datasets", json=body, headers=auth), 413)
    assert "DELTAFLOW_MAX_JSON_BODY_BYTES" in problem["detail"]
    app.extensions["deltaflow"].engine.dispose()


def test_the_servers_own_errors_are_problem_json():
    from waitress import utilities

    import service.serving  # noqa: F401  (installs the problem+json answers)

    for error in (
        utilities.BadRequest("malformed"),
        utilities.RequestHeaderFieldsTooLarge("too big"),
        utilities.InternalServerError("boom"),
    ):
        status, headers, body = error.to_response()
        assert dict(headers)["Content-Type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == error.code
        assert status.startswith(str(error.code))


def test_every_answer_carries_the_security_headers(client, auth):
    for path, headers in (
        ("/", {}),
        ("/api/v1/jobs", auth),
        ("/healthz", {}),
        ("/api/v1/docs", {}),
    ):
        response = client.get(path, headers=headers)
        response.close()
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "object-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        if path == "/":  # the dashboard runs no inline script
            assert "script-src 'self';" in csp
    assert client.get("/api/v1/jobs", headers=auth).headers["Cache-Control"] == "no-store"
