"""Parameter importance on synthetic sweeps whose answer is known, what it cannot tell,
and the batch answers built on summaries: ranking by reduce, importance, results.csv and
a job's curve.csv."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from service import job_claim, job_finish, job_progress
from service.importance import importance, ranks

# --- the method, on sweeps with a known answer ------------------------------------------------


def grid(**axes):
    """Every combination of the axes, as a list of {name: value}."""
    combos = [{}]
    for name, values in axes.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def shares(found):
    return {p.name: p.importance for p in found.params}


@pytest.mark.parametrize("seed", range(5))
def test_a_parameter_that_drives_the_metric_ranks_above_pure_noise_on_a_grid(seed):
    rng = np.random.default_rng(seed)
    trials = grid(lr=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], seed=[0, 1, 2, 3])
    values = [(math.log10(t["lr"]) + 2) ** 2 + rng.normal(0, 0.3) for t in trials]
    found = importance(["lr", "seed"], trials, values)
    assert shares(found)["lr"] > 0.9
    omega = {p.name: p.omega_squared for p in found.params}
    assert omega["seed"] < 0.05  # chance alone, corrected away
    assert found.params[0].name == "lr"
    assert sum(shares(found).values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_on_a_random_sweep_continuous_parameters_are_binned_and_ranked(seed):
    rng = np.random.default_rng(seed)
    n = 80
    trials = [
        {"lr": float(10 ** rng.uniform(-4, 0)), "l2": float(rng.uniform(0, 1)),
         "noise": float(rng.uniform(0, 1)), "optimizer": str(rng.choice(["adam", "sgd"]))}
        for _ in range(n)
    ]  # fmt: skip
    values = [(math.log10(t["lr"]) + 2) ** 2 + 3.0 * t["l2"] + rng.normal(0, 0.2) for t in trials]
    found = importance(["lr", "l2", "noise", "optimizer"], trials, values)
    got = shares(found)
    assert got["lr"] > got["l2"] > max(got["noise"], got["optimizer"])
    assert max(got["noise"], got["optimizer"]) < 0.1
    assert {p.name: p.groups for p in found.params}["optimizer"] == 2


def test_one_diverged_run_does_not_own_the_answer():
    trials = grid(lr=[0.001, 0.01, 0.1], units=[4, 8, 16, 32])
    values = [t["lr"] * 10 + t["units"] * 0.001 for t in trials]
    values[0] = 1e12  # lr 0.001, units 4: blew up
    found = importance(["lr", "units"], trials, values)
    assert found.params[0].name == "lr"


def test_what_it_cannot_tell_an_effect_that_exists_only_in_combination():
    """y = a XOR b: each parameter alone explains nothing, so both get ~0 and the answer
    says so: first-order importance cannot see interactions (docs/compare.md)."""
    trials = grid(a=[0, 1], b=[0, 1], rep=list(range(5)))
    values = [float(t["a"] ^ t["b"]) for t in trials]
    found = importance(["a", "b"], trials, values)
    assert found.explained == 0.0
    assert shares(found) == {"a": 0.5, "b": 0.5}
    assert any("no parameter explains" in w for w in found.warnings)


def test_thin_groups_are_flagged_and_too_few_trials_refused():
    found = importance(["x"], [{"x": f"v{i % 4}"} for i in range(8)], [float(i) for i in range(8)])
    assert any("fewer than 3 per group" in w for w in found.warnings)
    with pytest.raises(ValueError, match="at least 3"):
        importance(["x"], [{"x": 1}, {"x": 2}], [0.1, 0.2])


def test_ranks_average_ties():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [2.5, 0.0, 2.5, 1.0]


# --- the batch answers -----------------------------------------------------------------------

BASE = {
    "network": {"layers": [{"units": 4, "activation": "tanh"}], "output": {"activation": "softmax"},
                "loss": "cross_entropy"},
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0, "validation_split": 0.25},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 6},
}  # fmt: skip
RATES = [0.001, 0.01, 0.1, 1.0]


def curve(lr, seed):
    """val_loss dips at epoch 3 then rises (its min is not its last); the learning rate
    drives it, the seed barely moves it."""
    base = abs(math.log10(lr) + 2) + 0.01 * seed
    return [base + abs(e - 3) * 0.1 for e in range(1, 7)]


@pytest.fixture
def swept(client, auth, sessions):
    axes = {"training.optimizer.learning_rate": RATES, "training.seed": [0, 1, 2]}
    body = {"name": "imp", "base": BASE, "grid": axes}
    answer = client.post("/api/v1/batches", json=body, headers=auth)
    assert answer.status_code == 202, answer.json
    batch = client.get(f"/api/v1/batches/{answer.json['id']}", headers=auth).json
    for job in batch["jobs"]:
        lr, seed = job["params"]["training.optimizer.learning_rate"], job["params"]["training.seed"]
        claim = job_claim.claim(sessions, job["id"], "w", lease_seconds=60, max_attempts=3)
        points = [
            {"epoch": e, "train_loss": v, "val_loss": v, "train_accuracy": 0.5, "seconds": 0.01}
            for e, v in enumerate(curve(lr, seed), start=1)
        ]
        assert job_progress.flush(
            sessions, job["id"], claim.attempt, points, lease_seconds=60
        ).alive
        if job["index"] != 11:  # the last one stays running: it does not count
            assert job_finish.finish_succeeded(
                sessions, job["id"], claim.attempt, weights=b"", meta={}
            )
    return batch["id"]


def test_reduce_picks_which_value_of_each_curve_ranks_the_jobs(client, auth, swept):
    last = client.get(f"/api/v1/batches/{swept}?metric=val_loss", headers=auth).json
    low = client.get(f"/api/v1/batches/{swept}?metric=val_loss&reduce=min", headers=auth).json
    assert (last["reduce"], low["reduce"]) == ("last", "min")
    by_id = {j["id"]: j for j in low["jobs"]}
    best = by_id[low["best"]["id"]]["params"]
    assert best == {"training.optimizer.learning_rate": 0.01, "training.seed": 0}
    assert low["best"]["value"] == pytest.approx(0.0)  # its dip at epoch 3
    assert last["best"]["value"] == pytest.approx(0.3)  # its last epoch
    job = by_id[low["best"]["id"]]
    assert job["value"] == job["summary"]["val_loss"]["min"]
    assert job["summary"]["val_loss"]["argmin_epoch"] == 3
    bad = client.get(f"/api/v1/batches/{swept}?reduce=median", headers=auth)
    assert bad.status_code == 422


def test_importance_of_a_batch_names_the_parameter_that_drives_it(client, auth, swept):
    answer = client.get(f"/api/v1/batches/{swept}/importance?metric=val_loss", headers=auth)
    assert answer.status_code == 200, answer.json
    got = answer.json
    assert (got["metric"], got["mode"], got["reduce"]) == ("val_loss", "min", "last")
    assert got["method"] == "binned-omega-squared"
    assert got["n_trials"] == 11  # the running job does not count
    names = [p["name"] for p in got["params"]]
    assert names == ["training.optimizer.learning_rate", "training.seed"]
    assert got["params"][0]["importance"] > 0.9
    assert sum(p["importance"] for p in got["params"]) == pytest.approx(1.0, abs=1e-5)
    assert all(p["importance"] >= 0 for p in got["params"])


def test_importance_needs_finished_jobs(client, auth):
    body = {"name": "new", "base": BASE, "grid": {"training.seed": [0, 1]}}
    batch = client.post("/api/v1/batches", json=body, headers=auth).json
    answer = client.get(f"/api/v1/batches/{batch['id']}/importance", headers=auth)
    assert answer.status_code == 409
    assert "at least 3" in answer.json["detail"]
    other = client.get("/api/v1/batches/nope/importance", headers=auth)
    assert other.status_code == 404


def test_results_csv_has_a_row_per_job_with_params_and_summaries(client, auth, swept):
    answer = client.get(f"/api/v1/batches/{swept}/results.csv", headers=auth)
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(rows) == 12
    assert [int(r["index"]) for r in rows] == list(range(12))
    row = rows[0]
    lr = float(row["training.optimizer.learning_rate"])
    assert float(row["val_loss.min"]) == pytest.approx(min(curve(lr, int(row["training.seed"]))))
    assert row["val_loss.argmin_epoch"] == "3"
    assert row["val_accuracy.min"] == ""  # not recorded
    assert rows[11]["status"] == "running"


def test_curve_csv_is_the_whole_curve(client, auth, swept):
    batch = client.get(f"/api/v1/batches/{swept}", headers=auth).json
    job = batch["jobs"][5]
    answer = client.get(f"/api/v1/jobs/{job['id']}/curve.csv", headers=auth)
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0][:5] == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 7))
    lr = job["params"]["training.optimizer.learning_rate"]
    values = [float(r[2]) for r in rows[1:]]
    assert values == curve(lr, job["params"]["training.seed"])  # exact: repr round-trips
    assert client.get("/api/v1/jobs/nope/curve.csv", headers=auth).status_code == 404
