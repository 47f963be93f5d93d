"""Rate limits per API key (service.api.ratelimit): headers, 429 problem+json with
Retry-After, free 304s, and counters shared through Redis by several API processes."""

from __future__ import annotations

import dataclasses

import pytest

from service.app import create_app

JOBS = "/api/v1/jobs"
SPEC = {
    "network": {"layers": [{"units": 4, "activation": "tanh"}], "output": {"activation": "softmax"},
                "loss": "cross_entropy"},
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 5},
}  # fmt: skip


def limited_app(settings, rate_limit, **more):
    return create_app(
        {"settings": dataclasses.replace(settings, rate_limit=rate_limit, **more), "TESTING": True}
    )


@pytest.fixture
def app_3(settings):
    app = limited_app(settings, "3/minute")
    yield app
    app.extensions["deltaflow"].engine.dispose()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_no_limit_no_headers(client, auth):
    response = client.get(JOBS, headers=auth)
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers


def test_every_counted_answer_has_the_headers_and_the_excess_is_refused(app_3, make_key):
    client, key, other = app_3.test_client(), make_key("acme"), make_key("other")
    seen = []
    for _ in range(3):
        response = client.get(JOBS, headers=bearer(key))
        assert response.status_code == 200
        seen.append(response.headers["RateLimit-Remaining"])
        assert response.headers["RateLimit-Limit"] == "3"
        assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60
    assert seen == ["2", "1", "0"]
    refused = client.post(JOBS, json=SPEC, headers=bearer(key))
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    # Another key has its own budget; no key, the docs and health checks are not counted.
    assert client.get(JOBS, headers=bearer(other)).headers["RateLimit-Remaining"] == "2"
    unauthorized = client.get(JOBS, headers=bearer("dfk_wrong"))
    assert unauthorized.status_code == 401
    assert "RateLimit-Limit" not in unauthorized.headers
    for path in ("/healthz", "/api/v1/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200
        assert "RateLimit-Limit" not in response.headers


def test_a_conditional_get_answered_304_costs_nothing(app_3, make_key):
    client, key = app_3.test_client(), make_key("acme")
    job = client.post(JOBS, json=SPEC, headers=bearer(key))
    assert job.status_code == 202
    etag = job.headers["ETag"]
    assert job.headers["RateLimit-Remaining"] == "2"
    for _ in range(10):  # a polite poller, well past the limit of 3
        response = client.get(
            f"{JOBS}/{job.get_json()['id']}", headers={**bearer(key), "If-None-Match": etag}
        )
        assert response.status_code == 304
        assert response.headers["RateLimit-Remaining"] == "2"


@pytest.mark.integration
def test_several_api_processes_share_the_counters_in_redis(settings, make_key, redis_server):
    number = redis_server.claim_database()
    try:
        url = redis_server.url(number)
        apps = [limited_app(settings, "4/minute", rate_limit_storage_url=url) for _ in range(2)]
        key = make_key("acme")
        codes = [apps[i % 2].test_client().get(JOBS, headers=bearer(key)).status_code
                 for i in range(6)]  # fmt: skip
        assert codes == [200, 200, 200, 200, 429, 429]
        # In memory (no Redis), each process counts alone: together they let twice through.
        alone = [limited_app(settings, "4/minute", broker_url="filesystem://") for _ in range(2)]
        other = make_key("other")
        codes = [alone[i % 2].test_client().get(JOBS, headers=bearer(other)).status_code
                 for i in range(8)]  # fmt: skip
        assert codes == [200] * 8
        for app in apps + alone:
            app.extensions["deltaflow"].engine.dispose()
    finally:
        redis_server.release_database(number)


def test_an_unreachable_counter_store_never_fails_a_request(settings, make_key):
    app = limited_app(settings, "2/minute", rate_limit_storage_url="redis://127.0.0.1:1/0")
    key = make_key("acme")
    codes = [app.test_client().get(JOBS, headers=bearer(key)).status_code for _ in range(3)]
    # Falls back to counting in this process.
    assert codes == [200, 200, 429]
    app.extensions["deltaflow"].engine.dispose()
