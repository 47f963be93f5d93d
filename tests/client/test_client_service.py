"""The client against a real Deltaflow: the API over HTTP (PostgreSQL, Redis) and a real
Celery worker. The server's pages are small (see conftest), so lists and curves span
several of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from deltaflow_client import Client, DeltaflowError
from tests.client.scripted import DroppingProxy
from tests.support.jobs import tiny_spec

pytestmark = [pytest.mark.integration]

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
WAIT = 120.0  # a safety net for a stuck job, never a measurement
XOR_X = [[0, 0], [0, 1], [1, 0], [1, 1]] * 4
XOR_Y = [0, 1, 1, 0] * 4


@pytest.fixture(scope="module")
def client(service):
    with Client(service.url, service.key) as client:
        yield client


def named(client: Client, name: str) -> list[dict]:
    return [job for job in client.jobs() if job["name"] == name]


def test_the_api_base_and_the_server_root_reach_the_same_jobs(client, service):
    job = client.submit_job({"name": "either-url", **tiny_spec(epochs=5)})
    with Client(service.url + "/api/v1/", service.key) as other:
        assert other.get_job(job["id"])["id"] == job["id"]


def test_a_submit_whose_answer_is_lost_is_retried_into_the_same_job(client, service):
    with DroppingProxy(service.url, drop_first="/api/v1/jobs") as proxy:
        with Client(proxy.url, service.key) as through_proxy:
            job = through_proxy.submit_job({"name": "lost-answer", **tiny_spec(epochs=5)})
    posts = [r for r in proxy.received if r.method == "POST"]
    assert len(posts) == 2  # the first answer was dropped after the server made the job
    assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
    assert [j["id"] for j in named(client, "lost-answer")] == [job["id"]]


def test_the_same_idempotency_key_returns_the_first_job(client):
    spec = {"name": "keyed", **tiny_spec(epochs=5)}
    first = client.submit_job(spec, idempotency_key="client-keyed-1")
    again = client.submit_job(spec, idempotency_key="client-keyed-1")
    assert again["id"] == first["id"]
    other = client.submit_job(spec)  # a fresh key each call: a second job
    assert other["id"] != first["id"]


def test_wait_without_progress_returns_the_finished_job_and_draws_nothing(client, capsys):
    job = client.submit_job({"name": "waited", **tiny_spec(epochs=30)})
    done = client.wait(job["id"], progress=False, poll=0.1, timeout=WAIT)
    assert done["status"] == "succeeded"
    assert done["progress"]["epoch"] == 30
    assert capsys.readouterr().err == ""


def test_wait_with_progress_in_a_log_writes_one_line_per_status(client, capsys):
    job = client.submit_job({"name": "logged", **tiny_spec(epochs=30)})
    client.wait(job["id"], poll=0.1, timeout=WAIT)
    lines = capsys.readouterr().err.splitlines()  # pytest's stderr is no terminal
    assert lines[-1].startswith("[##############################]  epoch 30/30")
    assert lines[-1].endswith("succeeded")
    statuses = [line.rsplit("  ", 1)[-1] for line in lines]
    assert len(statuses) == len(set(statuses))


def test_the_curve_is_read_across_pages(client, service):
    job = client.wait(client.submit_job(tiny_spec(epochs=30))["id"], progress=False, timeout=WAIT)
    first = requests.get(
        f"{service.url}/api/v1/jobs/{job['id']}/curve",
        headers={"Authorization": f"Bearer {service.key}"},
        timeout=30,
    ).json()
    assert len(first["points"]) == service.curve_page
    assert first["complete"] is False  # one answer is not the whole curve
    points = client.curve(job["id"])
    assert [p["epoch"] for p in points] == list(range(1, 31))
    assert points[-1]["train_loss"] == job["metrics"]["train_loss"]
    assert [p["epoch"] for p in client.curve(job["id"], since=25)] == [26, 27, 28, 29, 30]
    frame = client.curve_frame(job["id"])
    assert list(frame.index) == list(range(1, 31))
    assert frame.loc[30, "train_loss"] == job["metrics"]["train_loss"]


def test_jobs_iterates_over_every_page(client, service):
    ids = [client.submit_job({"name": "paged", **tiny_spec(epochs=5)})["id"] for _ in range(5)]
    listed = [job["id"] for job in client.jobs() if job["name"] == "paged"]
    assert sorted(listed) == sorted(ids)  # across pages, none twice
    assert len(ids) > 2 * service.page_size
    for job_id in ids:
        client.wait(job_id, progress=False, timeout=WAIT)
    succeeded = {job["id"] for job in client.jobs(status="succeeded")}
    assert set(ids) <= succeeded


def test_cancel_then_delete(client):
    job = client.submit_job({"name": "cancelled", **tiny_spec(epochs=100_000)})
    assert client.cancel_job(job["id"])["status"] in {"cancelled", "cancelling"}
    assert client.wait(job["id"], progress=False, timeout=WAIT)["status"] == "cancelled"
    client.delete_job(job["id"])
    with pytest.raises(DeltaflowError) as raised:
        client.get_job(job["id"])
    assert raised.value.status == 404


def test_a_batch_is_submitted_waited_for_and_read_as_a_frame(client):
    batch = client.submit_batch(
        {
            "name": "client-grid",
            "base": tiny_spec(epochs=10),
            "grid": {"training.optimizer.learning_rate": [0.01, 0.1, 0.3]},
        }
    )
    assert len(batch["job_ids"]) == 3
    summary = client.wait_batch(batch["id"], progress=False, poll=0.1, timeout=WAIT)
    assert summary["counts"]["succeeded"] == 3
    assert summary["best"]["id"] in batch["job_ids"]
    ranked = client.batch(batch["id"], metric="train_loss", mode="min")
    assert ranked["metric"] == "train_loss"
    frame = client.batch_results(batch["id"])
    assert list(frame.index) == batch["job_ids"]
    assert sorted(frame["training.optimizer.learning_rate"]) == [0.01, 0.1, 0.3]
    assert set(frame["status"]) == {"succeeded"}
    assert frame["train_loss"].notna().all()
    assert batch["id"] in [b["id"] for b in client.batches()]
    assert {j["id"] for j in client.jobs(batch_id=batch["id"])} == set(batch["job_ids"])
    # Compare: search by summary, best first; which parameter mattered.
    found = list(
        client.jobs(filter=f"batch_id = '{batch['id']}'", order_by="summary.train_loss.min")
    )
    lows = [j["summary"]["train_loss"]["min"] for j in found]
    assert len(found) == 3
    assert lows == sorted(lows)
    importance = client.importance(batch["id"], metric="train_loss")
    assert [p["name"] for p in importance["params"]] == ["training.optimizer.learning_rate"]
    assert importance["n_trials"] == 3


def xor_job(dataset_id: str) -> dict:
    return {
        "name": "xor",
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "softmax"},
            "loss": "cross_entropy",
        },
        "dataset": {"id": dataset_id},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.1}, "epochs": 300, "seed": 0},
    }


def test_datasets_from_csv_npz_and_arrays_train_and_predict(client, tmp_path):
    csv_path = tmp_path / "xor.csv"
    csv_path.write_text(
        "a,b,target\n" + "".join(f"{a},{b},{y}\n" for (a, b), y in zip(XOR_X, XOR_Y, strict=True))
    )
    npz_path = tmp_path / "xor.npz"
    np.savez(npz_path, X=np.array(XOR_X, dtype=float), y=np.array(XOR_Y))

    from_csv = client.upload_dataset(csv_path)
    from_npz = client.upload_dataset(npz_path, name="xor-npz", task="classification")
    from_lists = client.upload_dataset((XOR_X, XOR_Y), name="xor-lists")
    from_arrays = client.upload_dataset((np.array(XOR_X), np.array(XOR_Y)), name="xor-arrays")

    assert from_csv["name"] == "xor.csv"
    assert [d["name"] for d in (from_npz, from_lists, from_arrays)] == [
        "xor-npz",
        "xor-lists",
        "xor-arrays",
    ]
    for dataset in (from_csv, from_npz, from_lists, from_arrays):
        assert (dataset["n_samples"], dataset["n_features"]) == (16, 2)
        assert dataset["classes"] == [0, 1]
    assert from_lists["sha256"] == from_arrays["sha256"]  # the same values, the same blob
    assert client.dataset(from_csv["id"])["id"] == from_csv["id"]
    sample = client.dataset_points(from_npz["id"], max_points=4, columns=[1])
    assert (sample["total"], sample["sampled"], len(sample["X"])) == (16, True, 4)
    assert all(len(row) == 1 for row in sample["X"])
    assert set(sample["y"]) == {0, 1}  # every class kept
    everything = client.dataset_points(from_lists["id"])
    assert everything["X"] == XOR_X
    assert everything["y"] == XOR_Y

    job = client.wait(
        client.submit_job(xor_job(from_csv["id"]))["id"], progress=False, timeout=WAIT
    )
    assert job["status"] == "succeeded"
    answer = client.predict(job["id"], np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    assert answer["predictions"] == [0, 1, 1, 0]
    assert np.allclose(np.sum(answer["probabilities"], axis=1), 1.0)
    model = client.model(job["id"])
    assert model["classes"] == [0, 1]


def test_errors_raise_one_class_with_the_problem(client):
    with pytest.raises(DeltaflowError) as raised:
        client.submit_job(
            {
                "network": {"output": {"activation": "sigmoid"}, "loss": "cross_entropy"},
                "dataset": {"generator": "xor"},
            }
        )
    error = raised.value
    assert error.status == 422
    assert error.type == "/problems/validation"
    assert error.title == "Unprocessable Content"
    assert error.detail == "cross_entropy needs a softmax output"
    assert error.errors[0]["loc"] == ["body", "network", "loss"]
    assert "body.network.loss" in str(error)

    with pytest.raises(DeltaflowError) as raised:
        client.get_job("no-such-job")
    assert (raised.value.status, raised.value.type) == (404, "/problems/not-found")

    queued = client.submit_job({"name": "no-model-yet", **tiny_spec(epochs=100_000)})
    with pytest.raises(DeltaflowError) as raised:
        client.model(queued["id"])
    assert raised.value.status == 409
    client.cancel_job(queued["id"])

    with (
        Client(client.base_url, "dfk_not-a-key") as stranger,
        pytest.raises(DeltaflowError) as raised,
    ):
        stranger.get_job(queued["id"])
    assert raised.value.status == 401


def test_the_worked_example_runs(service, tmp_path):
    """docs/client.md's script, as it stands, against the live service."""
    script = DOC.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "DELTAFLOW_URL": service.url, "DELTAFLOW_API_KEY": service.key}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("succeeded ")
    assert lines[2].startswith("200 ")  # every epoch, although the server's pages are small
    assert "4 succeeded; best" in result.stdout
    assert lines[-1] == "404 /problems/not-found no job no-such-job"
