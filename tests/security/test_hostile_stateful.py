"""schemathesis with stateful links over the whole API (issue 11), on SQLite and PostgreSQL.

The OpenAPI document links each create to the operations on what it created
(``service.api.openapi.LINKS``: POST /datasets → GET/DELETE /datasets/{id}, POST /jobs →
GET /jobs/{id}, its curve, model, predict, cancel, delete …, POST /batches → every
/batches/{id} operation and its first job, POST /webhooks → its deliveries, test, rotate,
delete). schemathesis' state machine chains real calls along those links — and the ones it
infers itself — with generated data, so the operations on an id are reached with ids that
exist, in the tenant that made them. A fixed number of scenarios and steps, derandomized:
any 5xx, or an answer the document does not describe, fails.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.app import create_app
from service.db import transaction
from service.tenants import create_tenant_key

pytestmark = pytest.mark.slow

OPENAPI = "/api/v1/openapi.json"
SCENARIOS = 25
STEPS = 10
# As tests/service/test_openapi.py: a schema-valid job spec can still be refused 422
# against its dataset and the limits (cross_entropy needs softmax, …); every other check runs.
NOT_APPLICABLE = [positive_data_acceptance]
# Generated create bodies are almost never valid job, batch or dataset specs (the stateless
# run in tests/service/test_openapi.py fuzzes them), so a create here sends one of these and
# the links then carry a real id into the operations on it, whose own inputs are generated.
JOB = {
    "network": {
        "layers": [{"units": 3}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 20, "seed": 1},
    "training": {"epochs": 5},
}
VALID_BODIES = {
    "/api/v1/jobs": JOB,
    "/api/v1/batches": {
        "name": "linked",
        "base": JOB,
        "grid": {"training.optimizer.learning_rate": [0.01, 0.1]},
    },
    "/api/v1/datasets": {
        "name": "linked",
        "task": "classification",
        "X": [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
        "y": [0, 1, 1, 0],
    },
    "/api/v1/webhooks": {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]},
}


@pytest.fixture
def linked_app(backend_app):  # type: ignore[no-untyped-def]
    app, auth = backend_app
    settings_ = app.extensions["deltaflow"].settings
    small = dataclasses.replace(settings_.limits, body_bytes=2_000_000)
    fuzzed = create_app(
        {"settings": dataclasses.replace(settings_, limits=small, webhook_allow_private=True)}
    )
    yield fuzzed, auth
    fuzzed.extensions["deltaflow"].engine.dispose()


def test_the_document_links_each_create_to_what_it_created(client):
    paths = client.get(OPENAPI).get_json()["paths"]
    links = paths["/api/v1/jobs"]["post"]["responses"]["202"]["links"]
    targets = {(link["operationId"], json.dumps(link["parameters"])) for link in links.values()}
    by_id = {
        op["operationId"]: (method, path)
        for path, item in paths.items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    linked = {by_id[operation_id] for operation_id, _ in targets}
    for path in ("/jobs/{job_id}", "/jobs/{job_id}/curve", "/jobs/{job_id}/cancel"):
        assert any(p == "/api/v1" + path for _, p in linked), path
    assert {parameters for _, parameters in targets} == {'{"job_id": "$response.body#/id"}'}
    for path, status, parameter in (
        ("/api/v1/datasets", "201", "dataset_id"),
        ("/api/v1/batches", "202", "batch_id"),
        ("/api/v1/webhooks", "201", "webhook_id"),
    ):
        links = paths[path]["post"]["responses"][status]["links"]
        assert links, path
        assert all(parameter in link["parameters"] or "job_id" in link["parameters"]
                   for link in links.values())  # fmt: skip


def test_linked_calls_never_answer_5xx_and_match_the_document(linked_app, capsys):
    app, auth = linked_app
    schema = schemathesis.openapi.from_wsgi(OPENAPI, app)
    # The WSGI transport does not decode gzip it asked for (see test_openapi.py).
    # The tenant's key as configured headers: schemathesis then knows the auth is real and
    # checks that the same call without it, or with a wrong key, is refused.
    headers = {**auth, "Accept-Encoding": "identity"}
    schema.config.update(headers=headers)
    steps: list[str] = []
    scenarios = itertools.count()

    class Linked(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Each scenario as a fresh tenant: what it reads (GET /datasets, /jobs, …) is
            # what it made, not what earlier scenarios left, so a replayed scenario draws
            # exactly as it did the first time (else Hypothesis fails it as flaky).
            with transaction(app.extensions["deltaflow"].sessions) as session:
                key = create_tenant_key(session, f"scenario-{next(scenarios)}")
            self.headers = {**headers, "Authorization": f"Bearer {key}"}

        def before_call(self, case):  # type: ignore[no-untyped-def]
            case.headers = {**(case.headers or {}), "Authorization": self.headers["Authorization"]}
            if case.method == "POST" and case.path in VALID_BODIES:
                case.body = copy.deepcopy(VALID_BODIES[case.path])
                case.media_type = "application/json"

        def validate_response(self, response, case, additional_checks=None, **kwargs):  # type: ignore[no-untyped-def]
            steps.append(f"{case.method} {case.path} {response.status_code}")
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=NOT_APPLICABLE,
                headers=self.headers,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Linked.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,  # the same scenarios on every run
            suppress_health_check=list(HealthCheck),
        )
    )
    # The links were followed: operations on an id were reached with ids that exist.
    found = [s for s in steps if "{" in s.split()[1] and s.split()[2].startswith("2")]
    assert found, "\n".join(steps[:50])
    with capsys.disabled():
        sys.stdout.write(f"\nstateful: {len(steps)} calls, {len(found)} 2xx on a linked id\n")
