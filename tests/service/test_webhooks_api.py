"""Webhooks through the API on SQLite: subscriptions, SSRF refusals, secrets and their
rotation, and the outbox written in the transaction of the change (or not at all)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from service import lifecycle
from service.app import create_app
from service.models import Webhook, WebhookDelivery
from tests.support.jobs import insert_job, tiny_spec

URL = "/api/v1/webhooks"


@pytest.fixture
def private_client(settings):
    """The API with DELTAFLOW_WEBHOOK_ALLOW_PRIVATE=1 (receivers on 127.0.0.1)."""
    app = create_app({"settings": dataclasses.replace(settings, webhook_allow_private=True)})
    yield app.test_client()
    app.extensions["deltaflow"].engine.dispose()


def deliveries(factory, **where) -> list[WebhookDelivery]:
    with factory() as session:
        query = select(WebhookDelivery).filter_by(**where).order_by(WebhookDelivery.created_at)
        return list(session.scalars(query))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",  # a name that resolves to 127.0.0.1
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "ftp://203.0.113.9/hook",
        "http://user:pw@203.0.113.9/hook",
        "http://no-such-host.invalid/hook",
    ],
)
def test_urls_reaching_inside_are_refused(client, auth, sessions, url):
    answer = client.post(URL, json={"url": url, "events": ["job.succeeded"]}, headers=auth)
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["errors"][0]["loc"] == ["body", "url"]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Webhook)) == 0


def test_subscribe_list_rotate_delete(private_client, make_key, sessions):
    auth = {"Authorization": f"Bearer {make_key('acme')}"}
    other = {"Authorization": f"Bearer {make_key('other')}"}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.failed", "job.succeeded"]}
    created = private_client.post(URL, json=body, headers=auth)
    assert created.status_code == 201, created.get_json()
    hook = created.get_json()
    assert hook["secret"].startswith("whsec_")
    assert created.headers["Location"] == f"{URL}/{hook['id']}"

    listed = private_client.get(URL, headers=auth).get_json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    assert "secret" not in listed["items"][0]  # shown once
    assert private_client.get(URL, headers=other).get_json()["items"] == []
    assert private_client.delete(f"{URL}/{hook['id']}", headers=other).status_code == 404

    rotated = private_client.post(f"{URL}/{hook['id']}/rotate-secret", headers=auth).get_json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != hook["secret"]
    assert rotated["previous_secret_expires_at"] is not None

    bad = private_client.post(URL, json={**body, "events": ["job.exploded"]}, headers=auth)
    assert bad.status_code == 422
    assert private_client.delete(f"{URL}/{hook['id']}", headers=auth).status_code == 204
    assert private_client.get(f"{URL}/{hook['id']}/deliveries", headers=auth).status_code == 404


def test_events_are_written_with_the_change_and_only_when_it_commits(
    private_client, make_key, sessions, tenant_of
):
    auth = {"Authorization": f"Bearer {make_key('acme')}"}
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded", "job.cancelled"]}
    hook = private_client.post(URL, json=body, headers=auth).get_json()

    done = insert_job(sessions, tiny_spec(), tenant="acme")
    claim = lifecycle.claim(sessions, done, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert lifecycle.finish_succeeded(sessions, done, claim.attempt, weights=b"", meta={})

    # A cancel that rolls back leaves no event; the same cancel committed leaves one.
    queued = insert_job(sessions, tiny_spec(), tenant="acme")
    with sessions() as session:
        assert lifecycle.request_cancel(session, queued, "queued")
        session.rollback()
    assert [d.event for d in deliveries(sessions)] == ["job.succeeded"]
    with sessions() as session:
        assert lifecycle.request_cancel(session, queued, "queued")
        session.commit()
    sent = deliveries(sessions, webhook_id=hook["id"])
    assert [d.event for d in sent] == ["job.succeeded", "job.cancelled"]
    assert all(d.status == "pending" and d.id.startswith("msg_") for d in sent)
    assert f'"id":"{done}"' in sent[0].body

    # A failed job: not subscribed, so no delivery. Another tenant's jobs: none either.
    failed = insert_job(sessions, tiny_spec(), tenant="acme")
    claim = lifecycle.claim(sessions, failed, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert lifecycle.finish_failed(sessions, failed, claim.attempt, {"type": "internal"})
    elsewhere = insert_job(sessions, tiny_spec(), tenant="other")
    with sessions() as session:
        assert lifecycle.request_cancel(session, elsewhere, "queued")
        session.commit()
    assert len(deliveries(sessions)) == 2

    listed = private_client.get(f"{URL}/{hook['id']}/deliveries", headers=auth).get_json()
    assert [d["event"] for d in listed["items"]] == ["job.cancelled", "job.succeeded"]
    assert listed["items"][0]["attempts"] == []
