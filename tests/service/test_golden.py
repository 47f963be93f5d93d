"""Golden answers: the JSON of the main endpoints, recorded once and compared ever after.

One scenario drives datasets, jobs, batches, backprop, health, the error paths and the
OpenAPI document through the Flask test client on SQLite, with deterministic inputs. The
jobs are trained in this process by the real runner (``worker.runner.run_job``), so the
curves, models and predictions are real and reproducible. Every answer is compared with
``tests/service/golden/<group>.json`` after normalising what is not deterministic: ids
(numbered in order of first appearance), timestamps, wall times, ETags and cursors;
floats are compared to 8 significant digits, except a gradient check's relative
difference: below 1e-6 it is rounding error, whose digits differ between CPUs and BLAS
builds (a clean machine's run failed on them), so it is recorded as ``<roundoff>``.

The test only uses the HTTP API, the runner's entry point and the database models, so it
keeps working when the code behind the API is reorganised: that is its purpose.

To re-record (only for an intended change of the contract; say so in the commit):
``DELTAFLOW_GOLDEN_UPDATE=1 pytest tests/service/test_golden.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job
from service.tenants import create_tenant_key
from worker.runner import Outcome, run_job
from worker.runtime import Runtime

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("DELTAFLOW_GOLDEN_UPDATE") == "1"
API = "/api/v1"
GROUPS = ("health", "datasets", "jobs", "batches", "backprop", "insight", "errors", "openapi")

ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?")
WALL_TIME_KEYS = frozenset({"seconds", "eta_seconds"})
CURSOR_KEYS = frozenset({"next_cursor"})
# A gradient check's relative difference below this is rounding error (module doc).
ROUNDOFF = 1e-6
HEADERS = ("Location", "WWW-Authenticate", "Retry-After", "Allow")

SPIRALS = {
    "network": {
        "layers": [{"units": 6, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {
        "generator": "spirals",
        "n_samples": 60,
        "seed": 2,
        "validation_split": 0.25,
        "standardize": True,
    },
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.05},
        "epochs": 12,
        "seed": 4,
        "record": {"grad_norms": True},
        "gradient_check": True,
    },
}
STORED_X = [[float(i % 5), float((i * 3) % 7) / 2.0] for i in range(24)]
STORED_Y = ["low" if row[0] + row[1] < 4 else "high" for row in STORED_X]
REGRESSION = {
    "network": {
        "layers": [{"units": 4, "activation": "relu"}],
        "output": {"activation": "identity"},
        "loss": "mse",
        "init": {"scheme": "he"},
    },
    "dataset": {"generator": "sine", "n_samples": 40, "seed": 1},
    "training": {
        "optimizer": {"name": "momentum", "learning_rate": 0.05},
        "epochs": 6,
        "batch_size": 8,
        "l2": 0.01,
        "lr_schedule": {"name": "step", "step_size": 2, "gamma": 0.5},
        "early_stopping": {"patience": 3},
    },
}
NG_THETA = [
    [[0.1, 0.3, -0.5], [-0.2, 0.4, 0.6]],
    [[0.05, -0.7, 0.8]],
]


class Normaliser:
    """Replaces what differs between runs; the same id gets the same name everywhere."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        self._collect(value)
        return self._replace(value)

    def _collect(self, value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                self._collect(key)
                self._collect(value[key])
        elif isinstance(value, list):
            for item in value:
                self._collect(item)
        elif isinstance(value, str):
            for found in ID.findall(value):
                self.ids.setdefault(found, f"<id{len(self.ids) + 1}>")

    def _text(self, text: str) -> str:
        text = ID.sub(lambda m: self.ids[m.group(0)], text)
        for full, name in self.ids.items():  # default job names hold an id's first 8 digits
            text = text.replace(full[:8], name[:-1] + ":8>")
        return TIME.sub("<time>", text)

    def _replace(self, value: Any, key: str | None = None) -> Any:
        if key in WALL_TIME_KEYS and isinstance(value, int | float):
            return "<seconds>"
        if key in CURSOR_KEYS and isinstance(value, str):
            return "<cursor>"
        if key == "relative_difference" and isinstance(value, float) and value < ROUNDOFF:
            return "<roundoff>"
        if isinstance(value, dict):
            return {self._text(k): self._replace(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._replace(item) for item in value]
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, float):
            return float(f"{value:.8g}")
        return value


@dataclasses.dataclass
class Scenario:
    client: Any
    small_client: Any  # the same database behind a small body limit
    headers: dict[str, str]
    runtime: Runtime
    factory: Any
    normalise: Normaliser
    answers: dict[str, dict[str, Any]]

    def record(self, group: str, name: str, response: Any) -> Any:
        body = response.get_json(silent=True)
        answer: dict[str, Any] = {
            "status": response.status_code,
            "content_type": response.mimetype if response.data else None,
            "etag": "ETag" in response.headers,
            "headers": {h: response.headers[h] for h in HEADERS if h in response.headers},
            "body": body,
        }
        assert name not in self.answers[group], name
        self.answers[group][name] = self.normalise(answer)
        return body

    def call(self, group: str, name: str, method: str, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", self.headers)
        response = getattr(self.client, method)(API + path, **kwargs)
        return self.record(group, name, response)

    def train(self, job_id: str, outcome: str = Outcome.succeeded) -> None:
        assert run_job(job_id, rt=self.runtime) == outcome

    def set_running(self, job_id: str) -> None:
        """The state a worker's claim leaves (without a worker): running, attempt 1."""
        with transaction(self.factory) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status="running", attempt=1, version=Job.version + 1)
            )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, migrated_sqlite_template) -> Any:
    folder = tmp_path_factory.mktemp("golden")
    database = folder / "deltaflow.sqlite3"
    shutil.copyfile(migrated_sqlite_template, database)
    settings = Settings.from_env(env={}, data_dir=folder, database_url=f"sqlite:///{database}")
    small = dataclasses.replace(
        settings,
        limits=dataclasses.replace(settings.limits, body_bytes=4000, trace_examples=8),
    )
    app = create_app({"settings": settings, "TESTING": True})
    small_app = create_app({"settings": small, "TESTING": True})
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        key = create_tenant_key(session, "golden")
    runtime = Runtime(settings, factory, owner="golden")
    yield Scenario(
        client=app.test_client(),
        small_client=small_app.test_client(),
        headers={"Authorization": f"Bearer {key}"},
        runtime=runtime,
        factory=factory,
        normalise=Normaliser(),
        answers={group: {} for group in GROUPS},
    )
    for each in (app, small_app):
        each.extensions["deltaflow"].engine.dispose()
    engine.dispose()


@pytest.fixture(scope="module")
def recorded(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Run the whole scenario once; every group's answers, normalised."""
    s = scenario
    _health(s)
    dataset_id = _datasets(s)
    _jobs(s, dataset_id)
    _batches(s)
    _backprop(s)
    _errors(s, dataset_id)
    _insight(s)
    doc = s.client.get(API + "/openapi.json").get_json()
    s.answers["openapi"] = {"paths": doc["paths"], "components": doc["components"]}
    return s.answers


def _health(s: Scenario) -> None:
    s.record("health", "healthz", s.client.get("/healthz"))
    s.record("health", "readyz", s.client.get("/readyz"))


def _datasets(s: Scenario) -> str:
    body = {"name": "stored", "task": "classification", "X": STORED_X, "y": STORED_Y}
    stored = s.call("datasets", "create", "post", "/datasets", json=body)
    spare = {"name": "spare", "task": "regression", "X": [[1.0], [2.0], [3.0]], "y": [0.5, 1, 2]}
    spare_id = s.call("datasets", "create_regression", "post", "/datasets", json=spare)["id"]
    s.call("datasets", "list", "get", "/datasets")
    s.call("datasets", "list_page", "get", "/datasets", query_string={"limit": 1})
    s.call("datasets", "get", "get", f"/datasets/{stored['id']}")
    s.call("datasets", "delete_unused", "delete", f"/datasets/{spare_id}")
    return stored["id"]


def _jobs(s: Scenario, dataset_id: str) -> None:
    job = s.call("jobs", "submit", "post", "/jobs", json={"name": "spirals", **SPIRALS})
    s.call("jobs", "get_queued", "get", f"/jobs/{job['id']}")
    s.train(job["id"])
    s.call("jobs", "get_succeeded", "get", f"/jobs/{job['id']}")
    s.call("jobs", "curve", "get", f"/jobs/{job['id']}/curve")
    s.call("jobs", "curve_since", "get", f"/jobs/{job['id']}/curve", query_string={"since": 9})
    s.call(
        "jobs", "curve_downsampled", "get", f"/jobs/{job['id']}/curve",
        query_string={"max_points": 4},
    )  # fmt: skip
    s.call(
        "jobs", "curve_columns", "get", f"/jobs/{job['id']}/curve",
        query_string={"max_points": 12, "from_epoch": 3, "format": "columns"},
    )  # fmt: skip
    s.call("jobs", "model", "get", f"/jobs/{job['id']}/model")
    X = [[0.0, 0.0], [0.5, -0.5], [-0.8, 0.3]]
    s.call("jobs", "predict", "post", f"/jobs/{job['id']}/predict", json={"X": X})
    s.call("jobs", "predict_wrong_width", "post", f"/jobs/{job['id']}/predict", json={"X": [[1.0]]})

    on_stored = {
        "network": {
            "layers": [{"units": 3, "activation": "sigmoid"}],
            "output": {"activation": "sigmoid"},
            "loss": "binary_cross_entropy",
            "init": {"scheme": "ng"},
        },
        "dataset": {"id": dataset_id},
        "training": {"optimizer": {"name": "gd", "learning_rate": 0.5}, "epochs": 5},
    }
    stored_job = s.call("jobs", "submit_stored_dataset", "post", "/jobs", json=on_stored)
    s.train(stored_job["id"])
    s.call("jobs", "get_stored_dataset", "get", f"/jobs/{stored_job['id']}")
    s.call("jobs", "model_stored_dataset", "get", f"/jobs/{stored_job['id']}/model")
    s.call(
        "jobs", "predict_labels", "post", f"/jobs/{stored_job['id']}/predict",
        json={"X": [[0.0, 0.0], [4.0, 3.0]]},
    )  # fmt: skip

    regression = s.call("jobs", "submit_regression", "post", "/jobs", json=REGRESSION)
    s.train(regression["id"])
    s.call("jobs", "curve_regression", "get", f"/jobs/{regression['id']}/curve")
    s.call(
        "jobs", "predict_regression", "post", f"/jobs/{regression['id']}/predict",
        json={"X": [[0.1], [1.2]]},
    )  # fmt: skip

    inline = {
        "name": "inline",
        "network": {"output": {"activation": "softmax"}, "loss": "cross_entropy"},
        "dataset": {"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": ["a", "b", "b", "a"]},
        "training": {"epochs": 3},
    }
    queued = s.call("jobs", "submit_inline", "post", "/jobs", json=inline)
    s.call("jobs", "cancel_queued", "post", f"/jobs/{queued['id']}/cancel")
    running = s.call("jobs", "submit_to_run", "post", "/jobs", json={"name": "r", **SPIRALS})
    s.set_running(running["id"])
    s.call("jobs", "cancel_running", "post", f"/jobs/{running['id']}/cancel")
    s.call("jobs", "cancel_cancelling", "post", f"/jobs/{running['id']}/cancel")
    headers = {**s.headers, "Idempotency-Key": "golden-1"}
    first = s.call("jobs", "submit_idempotent", "post", "/jobs", json=SPIRALS, headers=headers)
    s.call("jobs", "submit_idempotent_again", "post", "/jobs", json=SPIRALS, headers=headers)
    s.call("jobs", "list", "get", "/jobs")
    s.call("jobs", "list_succeeded", "get", "/jobs", query_string={"status": "succeeded"})
    s.call("jobs", "list_page", "get", "/jobs", query_string={"limit": 2})
    s.call("jobs", "cancel_idempotent", "post", f"/jobs/{first['id']}/cancel")
    s.call("jobs", "delete_finished", "delete", f"/jobs/{first['id']}")


def _insight(s: Scenario) -> None:
    recorded = {**SPIRALS, "training": {**SPIRALS["training"]}}
    recorded["training"]["record"] = {"grad_norms": True, "activations": True}
    job = s.call("insight", "submit_recording", "post", "/jobs", json=recorded)
    s.call("insight", "diagnostics_queued", "get", f"/jobs/{job['id']}/diagnostics")
    s.train(job["id"])
    s.call("insight", "diagnostics", "get", f"/jobs/{job['id']}/diagnostics")
    s.call("insight", "curve_without_asking", "get", f"/jobs/{job['id']}/curve")
    s.call(
        "insight", "curve_asking", "get", f"/jobs/{job['id']}/curve",
        query_string={"fields": "val_loss,grad_norms,activation_stats", "to_epoch": 2},
    )  # fmt: skip
    finder = {**SPIRALS, "min_lr": 1e-4, "max_lr": 1.0, "steps": 12}
    s.call("insight", "lr_finder", "post", "/lr-finder", json=finder)
    s.call("insight", "lr_finder_range", "post", "/lr-finder", json={**finder, "max_lr": 1e-5})


BATCH_BASE = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam"}, "epochs": 6, "seed": 1},
}


def _batches(s: Scenario) -> None:
    grid = {
        "name": "grid",
        "base": BATCH_BASE,
        "grid": {"training.optimizer.learning_rate": [0.01, 0.1], "network.layers.0.units": [2]},
        "scheduler": {"name": "asha", "min_epochs": 2, "reduction_factor": 2},
    }
    batch = s.call("batches", "submit_grid", "post", "/batches", json=grid)
    s.call("batches", "get_queued", "get", f"/batches/{batch['id']}")
    # ASHA decides at each trial's report, in its run: at rung 2 the second trial (lr 0.1)
    # is behind the first and stops; the first went on alone.
    s.train(batch["job_ids"][0])
    s.train(batch["job_ids"][1], Outcome.stopped)
    s.call("batches", "get_done", "get", f"/batches/{batch['id']}")
    s.call(
        "batches", "get_by_accuracy", "get", f"/batches/{batch['id']}",
        query_string={"metric": "val_accuracy"},
    )  # fmt: skip
    s.call("batches", "curves", "get", f"/batches/{batch['id']}/curves")
    page = s.call(
        "batches", "curves_capped", "get", f"/batches/{batch['id']}/curves",
        query_string={"max_points": 4},
    )  # fmt: skip
    s.call(
        "batches", "curves_next", "get", f"/batches/{batch['id']}/curves",
        query_string={"cursor": page["next_cursor"]},
    )  # fmt: skip
    s.call("batches", "cancel_finished", "post", f"/batches/{batch['id']}/cancel")
    s.call("jobs", "list_batch", "get", "/jobs", query_string={"batch_id": batch["id"]})

    spec_b = json.loads(json.dumps(BATCH_BASE))
    spec_b["training"]["optimizer"] = {"name": "sgd", "learning_rate": 0.1}
    listed = {"name": "listed", "jobs": [{"name": "a", **BATCH_BASE}, spec_b]}
    second = s.call("batches", "submit_jobs", "post", "/batches", json=listed)
    random = {
        "name": "random",
        "base": BATCH_BASE,
        "random": {"training.optimizer.learning_rate": {"loguniform": [0.001, 0.1]}},
        "samples": 2,
        "seed": 5,
    }
    s.call("batches", "submit_random", "post", "/batches", json=random)
    s.call("batches", "list", "get", "/batches")
    s.call("batches", "cancel_queued", "post", f"/batches/{second['id']}/cancel")
    s.call("batches", "get_cancelled", "get", f"/batches/{second['id']}")


def _backprop(s: Scenario) -> None:
    network = {
        "layers": [{"units": 2, "activation": "sigmoid"}],
        "output": {"activation": "sigmoid"},
        "loss": "binary_cross_entropy",
    }
    X = [[1.0, 2.0], [-1.0, 0.5], [0.3, -0.2]]
    trace = {
        "network": network,
        "weights": {"format": "theta", "layers": NG_THETA},
        "X": X,
        "y": [[1], [0], [1]],
        "l2": 1.0,
        "per_example": True,
    }
    s.call("backprop", "trace", "post", "/backprop/trace", json=trace)
    # Labels one-hot over two classes need two output units: Θ2 of shape (1, 3) is 422.
    labels = {**trace, "y": [1, 0, 1]}
    s.call("backprop", "trace_wrong_shape", "post", "/backprop/trace", json=labels)
    drawn = {"network": {**network, "init": {"scheme": "glorot"}}, "X": X, "y": [[1], [0], [1]]}
    s.call("backprop", "trace_drawn", "post", "/backprop/trace", json={**drawn, "seed": 3})
    check = {
        "network": {
            "layers": [{"units": 3, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "X": X,
        "y": ["x", "y", "x"],
        "seed": 1,
        "l2": 0.5,
        "include_gradients": True,
    }
    s.call("backprop", "gradient_check", "post", "/backprop/gradient-check", json=check)


def _errors(s: Scenario, dataset_id: str) -> None:
    s.record("errors", "401_missing_key", s.client.get(API + "/jobs"))
    bad_key = {"Authorization": "Bearer dfk_not-a-key"}
    s.record("errors", "401_wrong_key", s.client.get(API + "/jobs", headers=bad_key))
    missing = "0" * 32
    s.call("errors", "404_job", "get", f"/jobs/{missing}")
    s.call("errors", "404_curve", "get", f"/jobs/{missing}/curve")
    s.call("errors", "404_batch", "get", f"/batches/{missing}")
    s.call("errors", "404_dataset", "get", f"/datasets/{missing}")
    s.record("errors", "404_route", s.client.get(API + "/nothing", headers=s.headers))
    queued = s.call("errors", "submit_for_409", "post", "/jobs", json=SPIRALS)
    s.call("errors", "409_model_not_succeeded", "get", f"/jobs/{queued['id']}/model")
    s.call("errors", "409_delete_unfinished", "delete", f"/jobs/{queued['id']}")
    # The dataset's earlier jobs have finished: a queued one is what keeps it.
    on_dataset = {**SPIRALS, "dataset": {"id": dataset_id}}
    s.call("errors", "submit_on_dataset_for_409", "post", "/jobs", json=on_dataset)
    s.call("errors", "409_dataset_in_use", "delete", f"/datasets/{dataset_id}")
    s.call("errors", "cancel_for_409", "post", f"/jobs/{queued['id']}/cancel")
    s.call("errors", "409_cancel_finished", "post", f"/jobs/{queued['id']}/cancel")
    big = {"name": "big", **SPIRALS, "dataset": {"X": [[0.5] * 10] * 200, "y": [0, 1] * 100}}
    response = s.small_client.post(API + "/jobs", json=big, headers=s.headers)
    s.record("errors", "413_body", response)
    trace = {"network": {"output": {"activation": "identity"}, "loss": "mse"},
             "X": [[0.0]] * 9, "y": [0.0] * 9}  # fmt: skip
    response = s.small_client.post(API + "/backprop/trace", json=trace, headers=s.headers)
    s.record("errors", "413_trace_examples", response)
    s.call(
        "errors", "400_malformed_json", "post", "/jobs", data="{not json",
        content_type="application/json",
    )  # fmt: skip
    wrong_loss = json.loads(json.dumps(SPIRALS))
    wrong_loss["network"]["output"]["activation"] = "sigmoid"
    s.call("errors", "422_loss_needs_softmax", "post", "/jobs", json=wrong_loss)
    bad_units = json.loads(json.dumps(SPIRALS))
    bad_units["network"]["layers"][0]["units"] = 0
    s.call("errors", "422_units", "post", "/jobs", json=bad_units)
    s.call("errors", "422_unknown_generator", "post", "/jobs",
           json={**SPIRALS, "dataset": {"generator": "galaxy"}})  # fmt: skip
    s.call("errors", "422_missing_dataset", "post", "/jobs",
           json={**SPIRALS, "dataset": {"id": missing}})  # fmt: skip
    s.call("errors", "422_query", "get", "/jobs", query_string={"status": "sleeping"})
    s.call("errors", "422_cursor", "get", "/jobs", query_string={"cursor": "bogus"})
    s.call("errors", "422_batch_metric", "get", f"/batches/{missing}",
           query_string={"metric": "f1"})  # fmt: skip
    bad_batch = {"name": "bad", "jobs": [BATCH_BASE, {**BATCH_BASE, "training": {"epochs": 0}}]}
    s.call("errors", "422_batch_job", "post", "/batches", json=bad_batch)
    s.call("errors", "422_batch_kind", "post", "/batches", json={"name": "none"})
    s.call("errors", "422_predict_width", "post", f"/jobs/{missing}/predict", json={"X": []})
    keyed = {**s.headers, "Idempotency-Key": "golden-2"}
    s.call("errors", "submit_keyed", "post", "/jobs", json=SPIRALS, headers=keyed)
    s.call(
        "errors", "422_idempotency_reuse", "post", "/jobs",
        json={**SPIRALS, "name": "other"}, headers=keyed,
    )  # fmt: skip


@pytest.mark.parametrize("group", GROUPS)
def test_answers_equal_the_golden_record(recorded, group):
    path = GOLDEN_DIR / f"{group}.json"
    got = recorded[group]
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    # Round-trip through JSON so tuples and lists compare alike.
    got = json.loads(json.dumps(got))
    for name in expected.keys() | got.keys():
        assert got.get(name) == expected.get(name), f"{group}/{name} differs from the golden"
