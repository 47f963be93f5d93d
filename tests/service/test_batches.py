"""The batch domain on a real (SQLite) database: expansion, all-or-nothing creation,
summaries, the curves cursor and cancel. Runs are driven through ``service.runs``, the same
functions a worker uses, so the curves read exactly what a run writes."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from service import batches, cursors, curves, job_claim, job_finish, job_progress, jobs, summaries
from service.config import Limits
from service.models import Batch, CurvePoint, Job, Tenant
from service.problems import Invalid, NotFound
from service.schemas.batch import BatchSubmit
from service.schemas.names import JobStatus
from service.sweeps import set_path

LIMITS = Limits()
BASE = {
    "network": {
        "layers": [{"units": 4, "activation": "tanh"}],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
    },
    "dataset": {"generator": "xor", "n_samples": 40, "seed": 0},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 30},
}
GRID = {"training.optimizer.learning_rate": [0.01, 0.1], "network.layers.0.units": [2, 4, 8]}


@pytest.fixture
def tenants(session):
    ids = []
    for name in ("alice", "bob"):
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
        ids.append(tenant.id)
    session.commit()
    return ids


def submit(session, tenant_id, key=None, limits=LIMITS, **body):
    return batches.submit_batch(
        session, tenant_id, BatchSubmit(**body), limits, idempotency_key=key
    )


def rows(session):
    return (
        session.scalar(select(func.count()).select_from(Batch)),
        session.scalar(select(func.count()).select_from(Job)),
    )


def test_grid_creates_one_batch_with_every_combination_in_order(session, tenants):
    batch, job_ids, created = submit(session, tenants[0], name="lr x units", base=BASE, grid=GRID)
    assert created
    jobs = batches.batch_jobs(session, batch.id)
    assert [j.id for j in jobs] == job_ids
    assert [j.batch_index for j in jobs] == list(range(6))
    assert {j.queue for j in jobs} == {"batch"}
    assert {j.status for j in jobs} == {"queued"}
    assert [
        (j.params["training.optimizer.learning_rate"], j.params["network.layers.0.units"])
        for j in jobs
    ] == [(lr, units) for lr in (0.01, 0.1) for units in (2, 4, 8)]
    for job in jobs:
        assert (
            job.spec["training"]["optimizer"]["learning_rate"]
            == job.params["training.optimizer.learning_rate"]
        )
        assert job.spec["network"]["layers"][0]["units"] == job.params["network.layers.0.units"]
    assert batch.varied == list(GRID)
    assert batch.spec["kind"] == "grid"


def test_random_batches_are_reproducible_and_record_their_seed(session, tenants):
    random = {
        "training.optimizer.learning_rate": {"loguniform": [1e-3, 1e-1]},
        "network.layers.0.units": {"randint": [2, 16]},
    }
    first, ids1, _ = submit(
        session, tenants[0], name="r1", base=BASE, random=random, samples=5, seed=9
    )
    again, ids2, _ = submit(
        session, tenants[0], name="r2", base=BASE, random=random, samples=5, seed=9
    )
    params1 = [j.params for j in batches.batch_jobs(session, first.id)]
    params2 = [j.params for j in batches.batch_jobs(session, again.id)]
    assert params1 == params2
    assert len({p["training.optimizer.learning_rate"] for p in params1}) == 5
    unseeded, _, _ = submit(session, tenants[0], name="r3", base=BASE, random=random, samples=3)
    seed = unseeded.spec["seed"]
    replay, _, _ = submit(
        session, tenants[0], name="r4", base=BASE, random=random, samples=3, seed=seed
    )
    assert [j.params for j in batches.batch_jobs(session, unseeded.id)] == [
        j.params for j in batches.batch_jobs(session, replay.id)
    ]


def test_an_invalid_grid_combination_rejects_the_batch_and_stores_nothing(session, tenants):
    grid = {"training.optimizer.learning_rate": [0.1, -1.0], "network.layers.0.units": [2, 4]}
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], name="bad", base=BASE, grid=grid)
    locs = [loc for loc, _ in err.value.errors]
    assert locs == [["body", "base", "training", "optimizer", "learning_rate"]] * 2
    messages = [msg for _, msg in err.value.errors]
    assert messages[0].startswith(
        "job 2 (training.optimizer.learning_rate=-1.0, network.layers.0.units=2)"
    )
    assert messages[1].startswith("job 3 (")
    assert "2 of 4 jobs are invalid" in err.value.detail
    assert rows(session) == (0, 0)


def test_a_dataset_aware_error_in_one_job_stores_nothing(session, tenants):
    # Valid for pydantic, but sigmoid output with cross_entropy fails the jobs domain's checks.
    jobs = [BASE, BASE, set_path(BASE, "network.output.activation", "sigmoid")]
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], name="bad", jobs=jobs)
    assert err.value.errors[0][0] == ["body", "jobs", 2, "network", "loss"]
    assert rows(session) == (0, 0)


def test_a_bad_job_in_a_list_is_named_by_index_and_field(session, tenants):
    jobs = [BASE] * 3 + [set_path(BASE, "training.optimizer.learning_rate", "fast")]
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], name="bad", jobs=jobs)
    assert err.value.errors[0][0] == ["body", "jobs", 3, "training", "optimizer", "learning_rate"]
    assert rows(session) == (0, 0)


def test_a_job_list_records_what_varies_between_its_specs(session, tenants):
    jobs = [
        {**BASE, "name": "small"},
        set_path(BASE, "network.layers.0.units", 16),
        set_path(BASE, "training.l2", 0.0),  # the default: not a difference
    ]
    batch, _, _ = submit(session, tenants[0], name="list", jobs=jobs)
    found = batches.batch_jobs(session, batch.id)
    assert [j.params for j in found] == [
        {"network.layers.0.units": 4},
        {"network.layers.0.units": 16},
        {"network.layers.0.units": 4},
    ]
    assert [j.name for j in found] == ["small", "list #1", "list #2"]
    assert batch.varied == ["network.layers.0.units"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"base": BASE}, ["body"]),
        ({"base": BASE, "grid": GRID, "jobs": [BASE]}, ["body"]),
        ({"grid": GRID}, ["body", "base"]),
        ({"base": BASE, "random": {"training.l2": {"uniform": [0, 1]}}}, ["body", "samples"]),
        ({"base": BASE, "grid": GRID, "seed": 3}, ["body", "seed"]),
        ({"base": BASE, "jobs": [BASE]}, ["body", "base"]),
        ({"jobs": []}, ["body", "jobs"]),
        (
            {"base": BASE, "grid": {"network.layers.3.units": [1]}},
            ["body", "grid", "network.layers.3.units"],
        ),
    ],
)
def test_malformed_requests_name_the_field(session, tenants, body, loc):
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], name="bad", **body)
    assert err.value.errors[0][0] == loc
    assert rows(session) == (0, 0)


def test_the_batch_size_limit_is_configurable(session, tenants):
    small = Limits(batch_jobs=5)
    with pytest.raises(Invalid, match="at most 5"):
        submit(session, tenants[0], limits=small, name="big", base=BASE, grid=GRID)
    with pytest.raises(Invalid, match="at most 5"):
        submit(session, tenants[0], limits=small, name="big", jobs=[BASE] * 6)
    assert rows(session) == (0, 0)
    batch, ids, _ = submit(
        session, tenants[0], limits=Limits(batch_jobs=6), name="ok", base=BASE, grid=GRID
    )
    assert len(ids) == 6


def test_idempotency_key_replays_the_first_batch(session, tenants):
    first, ids, created = submit(session, tenants[0], key="k1", name="g", base=BASE, grid=GRID)
    again, ids_again, created_again = submit(
        session, tenants[0], key="k1", name="g", base=BASE, grid=GRID
    )
    assert created
    assert not created_again
    assert (again.id, ids_again) == (first.id, ids)
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], key="k1", name="other", base=BASE, grid=GRID)
    assert err.value.errors[0][0] == ["header", "Idempotency-Key"]
    other, _, created_other = submit(session, tenants[1], key="k1", name="g", base=BASE, grid=GRID)
    assert created_other
    assert other.id != first.id
    assert rows(session) == (2, 12)


def test_another_tenants_batch_is_not_found(session, tenants):
    batch, _, _ = submit(session, tenants[0], name="mine", base=BASE, grid=GRID)
    assert batches.get_batch(session, tenants[0], batch.id).id == batch.id
    with pytest.raises(NotFound):
        batches.get_batch(session, tenants[1], batch.id)
    with pytest.raises(NotFound):
        batches.cancel_batch(session, tenants[1], batch.id)
    assert {j.status for j in batches.batch_jobs(session, batch.id)} == {"queued"}


# --- runs, curves, summary, cancel -----------------------------------------------------


def run_epochs(factory, job_id, attempt, first, last, loss=1.0):
    points = [
        {"epoch": e, "train_loss": loss / e, "val_loss": loss / e + 0.1, "seconds": 0.01}
        for e in range(first, last + 1)
    ]
    assert job_progress.flush(factory, job_id, attempt, points, lease_seconds=60).alive


def claim(factory, job_id):
    claimed = job_claim.claim(factory, job_id, "test-worker", lease_seconds=60, max_attempts=3)
    assert claimed is not None
    return claimed.attempt


def test_cursor_round_trips_compactly_and_is_bound_to_its_batch():
    epochs = [5000] * 990 + list(range(10))
    cursor = cursors.epochs_cursor("b1", epochs)
    assert cursors.read_epochs_cursor("b1", cursor, 1000) == epochs
    assert len(cursor) < 100
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for bad in ("b2", "nonsense!", cursor[:-3] + "AAA"):
        batch_id, text = ("b2", cursor) if bad == "b2" else ("b1", bad)
        with pytest.raises(Invalid) as err:
            cursors.read_epochs_cursor(batch_id, text, 1000)
        assert err.value.errors[0][0] == ["query", "cursor"]


def test_curves_return_only_points_added_since_the_cursor(factory, session, tenants):
    batch, ids, _ = submit(session, tenants[0], name="curves", base=BASE, grid=GRID)
    attempts = {job_id: claim(factory, job_id) for job_id in ids[:3]}
    run_epochs(factory, ids[0], attempts[ids[0]], 1, 5)
    run_epochs(factory, ids[1], attempts[ids[1]], 1, 2)
    first = curves.batch_curves(session, batch, None, curves.CurveAsk(max_points=1000), Limits())
    got = {j["id"]: [p["epoch"] for p in j["points"]] for j in first["jobs"]}
    assert got == {ids[0]: [1, 2, 3, 4, 5], ids[1]: [1, 2], **{i: [] for i in ids[2:]}}
    assert not first["truncated"]
    assert not first["complete"]
    # The jobs progress at different speeds; only the new epochs of each come back.
    run_epochs(factory, ids[1], attempts[ids[1]], 3, 4)
    run_epochs(factory, ids[2], attempts[ids[2]], 1, 1)
    session.expire_all()
    second = curves.batch_curves(
        session, batch, first["next_cursor"], curves.CurveAsk(max_points=1000), Limits()
    )
    got = {j["id"]: [p["epoch"] for p in j["points"]] for j in second["jobs"]}
    assert got == {ids[0]: [], ids[1]: [3, 4], ids[2]: [1], **{i: [] for i in ids[3:]}}
    point = second["jobs"][1]["points"][0]
    assert point["train_loss"] == pytest.approx(1 / 3)
    assert set(point) == {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"}
    # Nothing new: the same cursor comes back.
    third = curves.batch_curves(
        session, batch, second["next_cursor"], curves.CurveAsk(max_points=1000), Limits()
    )
    assert all(not j["points"] for j in third["jobs"])
    assert third["next_cursor"] == second["next_cursor"]


def test_curves_share_a_capped_budget_and_say_when_more_is_waiting(factory, session, tenants):
    batch, ids, _ = submit(session, tenants[0], name="cap", base=BASE, grid=GRID)
    for job_id in ids[:2]:
        run_epochs(factory, job_id, claim(factory, job_id), 1, 10)
    cursor, seen = None, {ids[0]: [], ids[1]: []}
    few = Limits(curve_points=6)  # without max_points, the answer's budget is shared
    for _ in range(10):
        page = curves.batch_curves(session, batch, cursor, curves.CurveAsk(), few)
        assert sum(len(j["points"]) for j in page["jobs"]) <= 6
        for job in page["jobs"]:
            seen.setdefault(job["id"], []).extend(p["epoch"] for p in job["points"])
        cursor = page["next_cursor"]
        if not page["truncated"]:
            break
    assert seen[ids[0]] == list(range(1, 11))
    assert seen[ids[1]] == list(range(1, 11))


def test_summary_counts_progress_and_best_job(factory, session, tenants):
    batch, ids, _ = submit(session, tenants[0], name="sum", base=BASE, grid=GRID)
    losses = [0.5, 0.2, 0.9]
    for job_id, loss in zip(ids[:3], losses, strict=True):
        attempt = claim(factory, job_id)
        run_epochs(factory, job_id, attempt, 1, 30, loss=loss * 30)
        assert job_finish.finish_succeeded(factory, job_id, attempt, weights=b"w", meta={})
    attempt = claim(factory, ids[3])
    run_epochs(factory, ids[3], attempt, 1, 15, loss=0.01)  # better, but still running
    session.expire_all()
    summary = batches.summarize(session, batch, *summaries.check_metric("train_loss", None))
    assert summary["counts"]["succeeded"] == 3
    assert summary["counts"]["running"] == 1
    assert summary["counts"]["queued"] == 2
    assert summary["progress"] == {"finished": 3, "total": 6, "fraction": pytest.approx(3.5 / 6)}
    assert summary["best"] == {"id": ids[1], "value": pytest.approx(0.2)}
    assert summary["mode"] == "min"
    assert [j["params"]["network.layers.0.units"] for j in summary["jobs"]] == [2, 4, 8] * 2
    worst = batches.summarize(session, batch, *summaries.check_metric("train_loss", "max"))
    assert worst["best"]["id"] == ids[2]
    assert summaries.check_metric("val_accuracy", None) == ("val_accuracy", "max")
    for metric, mode, loc in (("loss", None, "metric"), ("val_loss", "lowest", "mode")):
        with pytest.raises(Invalid) as err:
            summaries.check_metric(metric, mode)
        assert err.value.errors[0][0] == ["query", loc]


def test_without_a_validation_split_the_default_ranking_is_the_training_loss(
    factory, session, tenants
):
    batch, ids, _ = submit(session, tenants[0], name="no val", base=BASE, grid=GRID)
    for job_id, loss in zip(ids[:2], [0.6, 0.3], strict=True):
        attempt = claim(factory, job_id)
        points = [{"epoch": e, "train_loss": loss / e, "seconds": 0.01} for e in (1, 2)]
        assert job_progress.flush(factory, job_id, attempt, points, lease_seconds=60).alive
        assert job_finish.finish_succeeded(factory, job_id, attempt, weights=b"w", meta={})
    session.expire_all()
    summary = batches.summarize(session, batch, None, None)
    assert (summary["metric"], summary["mode"], summary["metric_defaulted"]) == (
        "train_loss",
        "min",
        True,
    )
    assert summary["best"] == {"id": ids[1], "value": pytest.approx(0.15)}
    # Asked for explicitly, the validation loss ranks nothing: there is none.
    asked = batches.summarize(session, batch, "val_loss", None)
    assert (asked["metric"], asked["best"], asked["metric_defaulted"]) == ("val_loss", None, False)
    # One job with a validation loss makes it the default again.
    attempt = claim(factory, ids[2])
    run_epochs(factory, ids[2], attempt, 1, 2)
    session.expire_all()
    assert batches.summarize(session, batch, None, None)["metric"] == "val_loss"


def test_cancel_stops_every_unfinished_job_and_leaves_finished_ones(factory, session, tenants):
    batch, ids, _ = submit(session, tenants[0], name="cancel", base=BASE, grid=GRID)
    done = claim(factory, ids[0])
    assert job_finish.finish_succeeded(factory, ids[0], done, weights=b"w", meta={})
    running = claim(factory, ids[1])
    result = batches.cancel_batch(session, tenants[0], batch.id)
    assert result["cancelled"] == ids[1:]
    statuses = [j.status for j in batches.batch_jobs(session, batch.id)]
    assert statuses == ["succeeded", "cancelling"] + ["cancelled"] * 4
    # The running job's next flush sees the request and the run ends cancelled.
    pulse = job_progress.flush(
        factory,
        ids[1],
        running,
        [{"epoch": 1, "train_loss": 1.0, "seconds": 0.1}],
        lease_seconds=60,
    )
    assert pulse.cancel_requested
    assert job_finish.finish_cancelled(factory, ids[1], running)
    session.expire_all()
    assert result["counts"]["cancelled"] == 4
    assert batches.cancel_batch(session, tenants[0], batch.id)["cancelled"] == []
    assert session.scalar(select(func.count()).select_from(CurvePoint)) == 1
    assert all(JobStatus(j.status).finished for j in batches.batch_jobs(session, batch.id))


def race(factory, tenant_id, key):
    """Two threads submit the same batch with the same key at the same moment."""
    barrier = threading.Barrier(2)
    results, errors = [], []

    def request():
        try:
            with factory() as session:
                barrier.wait()
                batch, ids, _ = submit(
                    session, tenant_id, key=key, name="race", base=BASE, grid=GRID
                )
                results.append((batch.id, ids))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def test_concurrent_repeats_of_an_idempotent_request_create_one_batch(factory, tenants):
    """Both requests may miss the key lookup; the unique constraint then picks one winner
    and the loser answers with the winner's batch."""
    for attempt in range(4):
        results, errors = race(factory, tenants[0], f"race-{attempt}")
        assert errors == []
        assert len(results) == 2
        assert results[0] == results[1]
    with factory() as session:
        assert rows(session) == (4, 24)


def test_a_deleted_job_leaves_the_cursor_positions_of_the_others_intact(factory, session, tenants):
    batch, ids, _ = submit(session, tenants[0], name="gap", base=BASE, grid=GRID)
    attempts = {job_id: claim(factory, job_id) for job_id in ids[:3]}
    for job_id in ids[:3]:
        run_epochs(factory, job_id, attempts[job_id], 1, 3)
    assert job_finish.finish_succeeded(factory, ids[1], attempts[ids[1]], weights=b"w", meta={})
    first = curves.batch_curves(session, batch, None, curves.CurveAsk(max_points=100), Limits())
    jobs.delete_job(session, tenants[0], ids[1])
    run_epochs(factory, ids[2], attempts[ids[2]], 4, 5)
    session.expire_all()
    second = curves.batch_curves(
        session, batch, first["next_cursor"], curves.CurveAsk(max_points=100), Limits()
    )
    got = {j["id"]: [p["epoch"] for p in j["points"]] for j in second["jobs"]}
    assert got == {ids[0]: [], ids[2]: [4, 5], **{i: [] for i in ids[3:]}}
    summary = batches.summarize(session, batch, "val_loss", "min")
    assert [j["index"] for j in summary["jobs"]] == [0, 2, 3, 4, 5]


def test_inline_data_is_capped_across_the_whole_batch(session, tenants):
    inline = set_path(
        BASE,
        "dataset",
        {"X": [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5, "y": [0, 1, 1, 0] * 5},
    )
    limits = Limits(dataset_values=200)  # 40 values per job
    batch, ids, _ = submit(
        session,
        tenants[0],
        limits=limits,
        name="ok",
        base=inline,
        grid={"training.seed": [1, 2, 3, 4, 5]},
    )
    assert len(ids) == 5
    with pytest.raises(Invalid, match="POST /datasets") as err:
        submit(
            session,
            tenants[0],
            limits=limits,
            name="big",
            base=inline,
            grid={"training.seed": list(range(6))},
        )
    assert err.value.errors[0][0] == ["body"]
    assert rows(session) == (1, 5)


# --- schedulers (their decisions: tests/service/test_reports.py) ---------------------

ASHA = {"name": "asha", "metric": "val_loss", "min_epochs": 2, "reduction_factor": 3}


def test_a_validation_metric_needs_a_validation_split(session, tenants):
    with pytest.raises(Invalid) as err:
        submit(session, tenants[0], name="x", base=BASE, grid=GRID, scheduler=ASHA)
    assert err.value.errors[0][0] == ["body", "scheduler", "metric"]
    assert rows(session) == (0, 0)
