"""Webhooks through the API on SQLite: subscriptions, SSRF refusals, secrets and their
rotation, and the outbox written in the transaction of the change (or not at all)."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from service import job_claim, job_finish, job_transitions, webhooks
from service.app import create_app
from service.models import Tenant, Webhook, WebhookDelivery
from service.schemas.webhooks import WebhookCreate
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
    claim = job_claim.claim(sessions, done, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert job_finish.finish_succeeded(sessions, done, claim.attempt, weights=b"", meta={})

    # A cancel that rolls back leaves no event; the same cancel committed leaves one.
    queued = insert_job(sessions, tiny_spec(), tenant="acme")
    with sessions() as session:
        assert job_transitions.request_cancel(session, queued, "queued")
        session.rollback()
    assert [d.event for d in deliveries(sessions)] == ["job.succeeded"]
    with sessions() as session:
        assert job_transitions.request_cancel(session, queued, "queued")
        session.commit()
    sent = deliveries(sessions, webhook_id=hook["id"])
    assert [d.event for d in sent] == ["job.succeeded", "job.cancelled"]
    assert all(d.status == "pending" and d.id.startswith("msg_") for d in sent)
    assert f'"id":"{done}"' in sent[0].body

    # A failed job: not subscribed, so no delivery. Another tenant's jobs: none either.
    failed = insert_job(sessions, tiny_spec(), tenant="acme")
    claim = job_claim.claim(sessions, failed, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert job_finish.finish_failed(sessions, failed, claim.attempt, {"type": "internal"})
    elsewhere = insert_job(sessions, tiny_spec(), tenant="other")
    with sessions() as session:
        assert job_transitions.request_cancel(session, elsewhere, "queued")
        session.commit()
    assert len(deliveries(sessions)) == 2

    listed = private_client.get(f"{URL}/{hook['id']}/deliveries", headers=auth).get_json()
    assert [d["event"] for d in listed["items"]] == ["job.cancelled", "job.succeeded"]
    assert listed["items"][0]["attempts"] == []


def test_a_batch_completes_once_when_its_last_job_ends(private_client, make_key, sessions):
    auth = {"Authorization": f"Bearer {make_key('acme')}"}
    hook = private_client.post(
        URL, json={"url": "http://127.0.0.1:9/hook", "events": ["batch.completed"]}, headers=auth
    ).get_json()
    body = {"name": "sweep", "base": tiny_spec(), "grid": {"training.epochs": [5, 6, 7]}}
    batch = private_client.post("/api/v1/batches", json=body, headers=auth).get_json()
    first, second, third = batch["job_ids"]
    with sessions() as session:
        assert job_transitions.request_cancel(session, first, "queued")
        session.commit()
    claim = job_claim.claim(sessions, second, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert job_finish.finish_failed(sessions, second, claim.attempt, {"type": "internal"})
    assert deliveries(sessions) == []  # one job still queued: not complete
    claim = job_claim.claim(sessions, third, "w:1", lease_seconds=60, max_attempts=3)
    assert claim is not None
    assert job_finish.finish_succeeded(sessions, third, claim.attempt, weights=b"", meta={})
    (completed,) = deliveries(sessions, webhook_id=hook["id"])
    assert completed.event == "batch.completed"
    payload = json.loads(completed.body)
    assert payload["data"]["id"] == batch["id"]
    assert payload["data"]["counts"] == {"cancelled": 1, "failed": 1, "succeeded": 1}


def test_an_attempt_rechecks_the_address_and_never_connects_to_a_refused_one(
    sessions, settings, make_key
):
    """A URL that resolved publicly when it was created may resolve privately later (DNS
    rebinding): every attempt checks again, records the refusal, and connects nowhere."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://localhost:{server.server_address[1]}/hook"
        allowed = dataclasses.replace(
            settings, webhook_allow_private=True, webhook_retry_seconds=""
        )
        with sessions() as session:
            tenant = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
            if tenant is None:
                make_key("acme")
                tenant = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
            hook, _ = webhooks.create_webhook(
                session, tenant, WebhookCreate(url=url, events=["job.succeeded"]), allowed
            )
            delivery = webhooks.send_test(session, tenant, hook.id)
        # Delivered with private addresses allowed: it arrives.
        assert webhooks.deliver(sessions, delivery.id, allowed) == "succeeded"
        assert received == ["/hook"]
        # The same URL with private addresses refused: recorded as failed, nothing sent.
        refused = dataclasses.replace(allowed, webhook_allow_private=False)
        with sessions() as session:
            again = webhooks.send_test(session, tenant, hook.id)
        assert webhooks.deliver(sessions, again.id, refused) == "failed"
        assert received == ["/hook"]
        with sessions() as session:
            rows, _ = webhooks.list_deliveries(session, tenant, hook.id, None, None, 10)
        newest, attempts = rows[0]
        assert newest.id == again.id
        assert attempts[0].status_code is None
        assert "127.0.0.1" in attempts[0].error or "::1" in attempts[0].error
    finally:
        server.shutdown()
        server.server_close()
