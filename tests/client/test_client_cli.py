"""The CLI verbs against a real Deltaflow (API over HTTP, a real worker): ``--json`` is
parsed as a script would, tables are read as a person would."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deltaflow_client.cli import main
from tests.support.jobs import tiny_spec

pytestmark = [pytest.mark.integration]

CLIENT_SCRIPT = str(Path(sys.executable).with_name("deltaflow-client"))


@pytest.fixture
def cli(service, monkeypatch, capsys):
    """``cli(*argv) -> (exit status, stdout, stderr)`` with the service in the environment."""
    monkeypatch.setenv("DELTAFLOW_URL", service.url)
    monkeypatch.setenv("DELTAFLOW_API_KEY", service.key)

    def run(*argv: str) -> tuple[int, str, str]:
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def spec_file(tmp_path):
    def write(spec: dict, name: str = "spec.json") -> str:
        path = tmp_path / name
        path.write_text(json.dumps(spec))
        return str(path)

    return write


def test_jobs_submit_wait_get_list_and_curve(cli, spec_file):
    status, out, err = cli("jobs", "submit", spec_file({"name": "cli-job", **tiny_spec(20)}),
                           "--wait", "--json")  # fmt: skip
    assert status == 0, err
    job = json.loads(out)
    assert (job["name"], job["status"]) == ("cli-job", "succeeded")
    assert err.splitlines()[-1].endswith("succeeded")  # progress lines go to stderr

    status, out, _ = cli("jobs", "get", job["id"], "--json")
    assert json.loads(out)["id"] == job["id"]
    status, out, _ = cli("jobs", "get", job["id"])
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["id"].strip() == job["id"]
    assert fields["status"].strip() == "succeeded"
    assert fields["epoch"].strip() == "20/20"

    status, out, _ = cli("jobs", "list", "--status", "succeeded", "--json", "--limit", "0")
    assert job["id"] in [item["id"] for item in json.loads(out)]
    status, out, _ = cli("jobs", "list", "--limit", "3")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "STATUS", "EPOCH"]
    assert 1 <= len(rows) <= 3
    mine = next(row.split() for row in rows if row.startswith(job["id"]))
    assert mine[1:4] == ["cli-job", "succeeded", "20/20"]

    status, out, _ = cli("jobs", "curve", job["id"], "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 21))  # across curve pages
    assert float(rows[-1]["train_loss"]) == job["metrics"]["train_loss"]
    status, out, _ = cli("jobs", "curve", job["id"], "--json")
    assert len(json.loads(out)) == 20
    status, out, _ = cli("jobs", "curve", job["id"], "--max-points", "4")
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["EPOCH", "TRAIN_LOSS"]
    epochs = [row.split()[0] for row in rows]
    assert (epochs[0], epochs[-1]) == ("1", "20")
    assert len(epochs) <= 4  # a hard cap: first, last and the extremes (M4)


def test_jobs_cancel_and_an_error_on_stderr(cli, spec_file):
    status, out, _ = cli("jobs", "submit", spec_file({"name": "cli-cancel", **tiny_spec(100_000)}),
                         "--json")  # fmt: skip
    assert status == 0
    job_id = json.loads(out)["id"]
    status, out, _ = cli("jobs", "cancel", job_id)
    assert status == 0
    assert out.split() in ([job_id, "cancelled"], [job_id, "cancelling"])

    status, out, err = cli("jobs", "get", "no-such-job")
    assert status == 1
    assert out == ""
    assert err.strip() == "deltaflow: error: 404 Not Found: no job no-such-job"


def test_a_rejected_spec_names_the_field(cli, spec_file):
    bad = {"network": {"output": {"activation": "sigmoid"}, "loss": "cross_entropy"},
           "dataset": {"generator": "xor"}}  # fmt: skip
    status, _, err = cli("jobs", "submit", spec_file(bad))
    assert status == 1
    assert "cross_entropy needs a softmax output" in err
    assert "body.network.loss" in err


def test_batches_submit_wait_and_get(cli, spec_file):
    sweep = {"name": "cli-sweep", "base": tiny_spec(10),
             "grid": {"network.layers.0.units": [2, 4]}}  # fmt: skip
    status, out, err = cli("batches", "submit", spec_file(sweep), "--wait", "--json")
    assert status == 0, err
    summary = json.loads(out)
    assert summary["counts"]["succeeded"] == 2
    assert summary["varied"] == ["network.layers.0.units"]

    status, out, _ = cli("batches", "get", summary["id"], "--metric", "train_loss")
    head, jobs = out.split("\n\n")
    fields = dict(line.split(":", 1) for line in head.splitlines())
    assert fields["finished"].strip() == "2/2"
    assert "train_loss" in fields["best"]
    header, *rows = jobs.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "NETWORK.LAYERS.0.UNITS"]
    assert sorted(row.split()[2] for row in rows) == ["2", "4"]

    status, out, _ = cli("batches", "submit", spec_file(sweep, "again.json"))
    first, *job_ids = out.splitlines()
    assert first.endswith("2 jobs")
    assert len(job_ids) == 2


def test_datasets_upload(cli, tmp_path):
    path = tmp_path / "and.csv"
    path.write_text("a,b,target\n0,0,0\n0,1,0\n1,0,0\n1,1,1\n")
    status, out, _ = cli("datasets", "upload", str(path), "--name", "and", "--json")
    assert status == 0
    dataset = json.loads(out)
    assert (dataset["name"], dataset["n_samples"], dataset["n_features"]) == ("and", 4, 2)
    status, out, _ = cli("datasets", "upload", str(path), "--task", "regression")
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["name"].strip() == "and.csv"
    assert fields["task"].strip() == "regression"


def test_url_and_key_can_be_options_and_are_required(service, capsys, monkeypatch):
    monkeypatch.delenv("DELTAFLOW_URL", raising=False)
    monkeypatch.delenv("DELTAFLOW_API_KEY", raising=False)
    assert main(["jobs", "list"]) == 2
    assert "DELTAFLOW_URL" in capsys.readouterr().err
    assert main(["--url", service.url, "jobs", "list", "--key", service.key, "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main(["jobs", "list", "--url", service.url, "--key", "dfk_wrong"]) == 1
    assert capsys.readouterr().err.startswith("deltaflow: error: 401 Unauthorized")


def test_the_console_script_runs(service):
    result = subprocess.run(
        [CLIENT_SCRIPT, "jobs", "list", "--json", "--limit", "1"],
        env={"DELTAFLOW_URL": service.url, "DELTAFLOW_API_KEY": service.key, "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
