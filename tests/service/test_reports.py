"""Schedulers and searches on a real (SQLite) database, driven by the functions a run uses:
``job_claim.claim``, then ``job_progress.flush`` with a scheduler's ``decide`` at a report
epoch. The decisions, what they do to the jobs, and TPE trials made as others finish."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from service import batches, job_claim, job_finish, job_progress, schedulers, searches
from service.config import Limits
from service.models import Checkpoint, CurvePoint, Job, TrialDecision
from service.problems import Invalid
from service.schemas.batch import BatchSubmit
from service.sweeps import set_path
from tests.service.test_batches import ASHA, BASE, GRID

LIMITS = Limits()
VALIDATED = set_path(BASE, "dataset.validation_split", 0.25)


@pytest.fixture
def tenant(session):
    from service.models import Tenant

    row = Tenant(name="alice")
    session.add(row)
    session.commit()
    return row.id


def submit(session, tenant, **body):
    return batches.submit_batch(session, tenant, BatchSubmit(name="sweep", **body), LIMITS)


def claim(factory, job_id):
    claimed = job_claim.claim(factory, job_id, "test-worker", lease_seconds=60, max_attempts=3)
    assert claimed is not None
    return claimed


def report(factory, claimed, epochs, values, *, checkpoint=None):
    """Flush one point per epoch (val_loss = train_loss = value) and report the last one."""
    reporting = schedulers.reporting(factory, claimed)
    assert reporting is not None
    assert reporting.due(epochs[-1])
    points = [
        {"epoch": e, "train_loss": v, "val_loss": v, "train_accuracy": v, "seconds": 0.01}
        for e, v in zip(epochs, values, strict=True)
    ]
    pulse = job_progress.flush(
        factory,
        claimed.job_id,
        claimed.attempt,
        points,
        lease_seconds=60,
        checkpoint=checkpoint,
        decide=reporting.at(epochs[-1], claimed.attempt),
    )
    assert pulse.alive
    return pulse.decision


def status(session, job_id):
    session.expire_all()
    return session.get(Job, job_id).status


# --- ASHA ------------------------------------------------------------------------------


def test_asha_stops_a_trial_behind_at_its_rung_and_the_decision_stands(factory, session, tenant):
    batch, ids, _ = submit(session, tenant, base=VALIDATED, grid=GRID, scheduler=ASHA)
    claims = {job_id: claim(factory, job_id) for job_id in ids}
    # Rung 2 with η = 3: the first two trials there are too few to judge; they go on.
    for i in (0, 1):
        assert report(factory, claims[ids[i]], [1, 2], [0.1 * (i + 1)] * 2).action == "continue"
    # Four more arrive, each worse than the first two: outside the best n // 3, stopped.
    decisions = [report(factory, claims[ids[i]], [1, 2], [0.1 * (i + 1)] * 2) for i in range(2, 6)]
    assert [d.action for d in decisions] == ["stop"] * 4
    assert decisions[1].detail == {"epoch": 2, "value": pytest.approx(0.4), "rank": 4, "of": 4}
    assert [status(session, j) for j in ids] == ["running"] * 2 + ["cancelled"] * 4
    summary = batches.summarize(session, batch, "val_loss", "min")
    assert summary["jobs"][5]["stopped_by_scheduler"]["rank"] == 6
    assert summary["jobs"][0]["stopped_by_scheduler"] is None
    # Trial 0 resumed from an earlier checkpoint reports rung 2 again with a worse value:
    # the board changed, but its decision was taken and stands.
    assert report(factory, claims[ids[0]], [1, 2], [9.0, 9.0]).action == "continue"
    rows = session.scalar(select(func.count()).select_from(TrialDecision))
    assert rows == 6


def test_asha_judges_by_the_chosen_metric_and_mode(factory, session, tenant):
    config = {**ASHA, "metric": "train_accuracy", "reduction_factor": 2}
    batch, ids, _ = submit(
        session, tenant, base=BASE, grid={"training.seed": [1, 2, 3, 4]}, scheduler=config
    )
    assert batch.spec["scheduler"]["mode"] == "max"
    # Accuracies 0.2, 0.8, 0.4, 0.6 in order of arrival: mode max keeps the higher half.
    actions = [report(factory, claim(factory, j), [1, 2], [value] * 2).action
               for j, value in zip(ids, [0.2, 0.8, 0.4, 0.6], strict=True)]  # fmt: skip
    assert actions == ["continue", "continue", "stop", "continue"]  # 0.6: 2nd of 4, kept


def test_a_validation_metric_needs_a_validation_split_for_schedulers_and_searches(session, tenant):
    with pytest.raises(Invalid) as err:
        submit(session, tenant, base=BASE, grid=GRID, scheduler=ASHA)
    assert err.value.errors[0][0] == ["body", "scheduler", "metric"]
    search = {"name": "tpe", "space": {"training.l2": {"uniform": [0, 1]}}, "trials": 3}
    with pytest.raises(Invalid) as err:
        submit(session, tenant, base=BASE, search=search)
    assert err.value.errors[0][0] == ["body", "search", "metric"]


# --- median ------------------------------------------------------------------------------


def test_median_compares_the_best_so_far_with_the_others_running_means(factory, session, tenant):
    config = {"name": "median", "grace_epochs": 2, "min_trials": 2, "interval_epochs": 2}
    _, ids, _ = submit(
        session, tenant, base=VALIDATED, grid={"training.seed": [1, 2, 3]}, scheduler=config
    )
    claims = [claim(factory, j) for j in ids]
    assert report(factory, claims[0], [1, 2], [1.0, 0.2]).action == "continue"  # mean 0.6
    assert report(factory, claims[1], [1, 2], [0.4, 0.4]).action == "continue"  # too few
    # Trial 2's best 0.55 is worse than the median of the others' means (0.6, 0.4) = 0.5.
    decision = report(factory, claims[2], [1, 2], [0.7, 0.55])
    assert decision.action == "stop"
    assert decision.detail == {
        "epoch": 2, "value": pytest.approx(0.55), "median": pytest.approx(0.5), "of": 2,
    }  # fmt: skip


# --- PBT ---------------------------------------------------------------------------------

PBT = {"name": "pbt", "interval_epochs": 2, "quantile": 0.5, "resample_probability": 0.0,
       "perturbation_factors": [2.0], "seed": 3}  # fmt: skip


def test_pbt_exploit_copies_the_checkpoint_and_the_curve_goes_on_from_it(factory, session, tenant):
    rates = [0.01, 0.02]
    batch, ids, _ = submit(
        session,
        tenant,
        base=VALIDATED,
        grid={"training.optimizer.learning_rate": rates, "network.layers.0.units": [4]},
        scheduler=PBT,
    )
    good, bad = claim(factory, ids[0]), claim(factory, ids[1])
    # The good trial is ahead: epoch 4, checkpointed there.
    assert report(factory, good, [1, 2], [0.5, 0.4], checkpoint=(2, b"g2")).action == "continue"
    decision = report(factory, good, [3, 4], [0.3, 0.2], checkpoint=(4, b"g4"))
    assert decision.action == "continue"  # alone with a score at its epoch: best anyway
    # The bad one reports epoch 2 (worse): bottom half, exploits the good one's checkpoint.
    decision = report(factory, bad, [1, 2], [0.9, 0.8], checkpoint=(2, b"b2"))
    assert decision.action == "exploit"
    assert decision.parent == ids[0]
    assert decision.perturbed == {"training.optimizer.learning_rate": 0.02}  # 0.01 x 2
    session.expire_all()
    job = session.get(Job, ids[1])
    assert job.status == "queued"
    assert job.epoch == 4
    assert job.releases == 1
    assert job.spec["training"]["optimizer"]["learning_rate"] == 0.02
    assert job.params == {"training.optimizer.learning_rate": 0.02, "network.layers.0.units": 4}
    assert job.origin == {
        "kind": "pbt", "parent": ids[0], "epoch": 4, "generation": 1,
        "perturbed": {"training.optimizer.learning_rate": 0.02},
        "initial": {"kind": "grid", "index": 1},
    }  # fmt: skip
    saved = session.get(Checkpoint, ids[1])
    assert (saved.epoch, saved.state, saved.adopted) == (4, b"g4", True)
    # One point per epoch: its own 1..2, the parent's 3..4 (the parent was ahead).
    curve = session.execute(
        select(CurvePoint.epoch, CurvePoint.val_loss)
        .where(CurvePoint.job_id == ids[1])
        .order_by(CurvePoint.epoch)
    ).all()
    assert [tuple(p) for p in curve] == [(1, 0.9), (2, 0.8), (3, 0.3), (4, 0.2)]
    assert job.metrics["val_loss"] == 0.2
    # The next run resumes from the adopted checkpoint; its next report is a new generation.
    again = claim(factory, ids[1])
    assert again.checkpoint_adopted
    assert again.checkpoint_epoch == 4
    summary = batches.summarize(session, batch, "val_loss", "min")
    assert summary["lineage"] == [
        {"job_id": ids[1], "epoch": 2, "parent": ids[0], "parent_epoch": 4,
         "perturbed": {"training.optimizer.learning_rate": 0.02}},
    ]  # fmt: skip
    assert summary["jobs"][1]["origin"]["kind"] == "pbt"


def test_pbt_going_back_to_an_earlier_checkpoint_trims_the_curve(factory, session, tenant):
    _, ids, _ = submit(
        session, tenant, base=VALIDATED,
        grid={"training.optimizer.learning_rate": [0.01, 0.02]}, scheduler=PBT,
    )  # fmt: skip
    slow, fast = claim(factory, ids[0]), claim(factory, ids[1])
    report(factory, slow, [1, 2], [0.1, 0.1], checkpoint=(2, b"s2"))
    decision = report(factory, fast, [1, 2, 3, 4], [0.9] * 4, checkpoint=(4, b"f4"))
    assert decision.action == "exploit"
    assert decision.detail["parent_epoch"] == 2
    epochs = session.scalars(
        select(CurvePoint.epoch).where(CurvePoint.job_id == ids[1]).order_by(CurvePoint.epoch)
    ).all()
    assert epochs == [1, 2]


def test_pbt_needs_something_to_explore_and_no_search(session, tenant):
    with pytest.raises(Invalid) as err:
        submit(session, tenant, base=VALIDATED, grid={"network.layers.0.units": [2, 4]},
               scheduler=PBT)  # fmt: skip
    assert err.value.errors[0][0] == ["body", "scheduler", "name"]


# --- TPE ---------------------------------------------------------------------------------

SPACE = {"training.optimizer.learning_rate": {"loguniform": [1e-3, 1e-1]},
         "network.layers.0.units": {"randint": [2, 8]}}  # fmt: skip


def tpe(trials=6, max_concurrent=2, seed=5, **extra):
    return {"name": "tpe", "space": SPACE, "trials": trials, "max_concurrent": max_concurrent,
            "seed": seed, "startup_trials": 2, **extra}  # fmt: skip


def finish(factory, job_id, value):
    claimed = claim(factory, job_id)
    point = {"epoch": 1, "train_loss": value, "val_loss": value, "seconds": 0.01}
    assert job_progress.flush(factory, job_id, claimed.attempt, [point], lease_seconds=60).alive
    assert job_finish.finish_failed(factory, job_id, claimed.attempt, {"type": "x"})


def trials_of(session, batch_id):
    session.expire_all()
    return batches.batch_jobs(session, batch_id)


def test_tpe_makes_max_concurrent_trials_then_one_per_finish_until_trials(factory, session, tenant):
    batch, ids, _ = submit(session, tenant, base=VALIDATED, search=tpe())
    assert len(ids) == 2
    assert batch.growing
    assert batch.spec["search"]["mode"] == "min"
    jobs = trials_of(session, batch.id)
    assert [j.origin for j in jobs] == [
        {"kind": "tpe", "trial": n, "seed": 5, "observed": 0, "pending": n} for n in (0, 1)
    ]
    assert searches.grow(factory, batch.id, LIMITS) == []  # two in flight: no room
    for step in range(4):
        finish(factory, jobs[step].id, 1.0 / (step + 1))
        made = searches.grow(factory, batch.id, LIMITS)
        assert len(made) == 1
        jobs = trials_of(session, batch.id)
        assert jobs[-1].origin["observed"] == step + 1
        assert jobs[-1].origin["pending"] == 1
    assert [j.batch_index for j in jobs] == list(range(6))
    session.expire_all()
    assert not session.get(type(batch), batch.id).growing
    finish(factory, jobs[4].id, 0.1)
    assert searches.grow(factory, batch.id, LIMITS) == []  # all six made


def test_tpe_trials_are_made_once_when_finishes_race(factory, session, tenant):
    batch, ids, _ = submit(session, tenant, base=VALIDATED, search=tpe(trials=20, max_concurrent=3))
    for job_id in ids:
        finish(factory, job_id, 0.5)
    made: list = []
    threads = [
        threading.Thread(target=lambda: made.extend(searches.grow(factory, batch.id, LIMITS)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    jobs = trials_of(session, batch.id)
    assert len(made) == 3
    assert len(jobs) == 6
    assert sorted(j.batch_index for j in jobs) == list(range(6))


def test_tpe_is_reproducible_from_its_seed_and_results(factory, session, tenant):
    def run():
        batch, _, _ = submit(
            session, tenant, base=VALIDATED, search=tpe(trials=5, max_concurrent=1)
        )
        for _step in range(5):
            job = trials_of(session, batch.id)[-1]
            finish(factory, job.id, abs(job.params["training.optimizer.learning_rate"] - 0.01))
            searches.grow(factory, batch.id, LIMITS)
        return [j.params for j in trials_of(session, batch.id)]

    assert run() == run()


def test_cancelling_a_tpe_batch_ends_its_growth(factory, session, tenant):
    batch, ids, _ = submit(session, tenant, base=VALIDATED, search=tpe())
    batches.cancel_batch(session, tenant, batch.id)
    assert searches.grow_open(factory, LIMITS) == []
    assert len(trials_of(session, batch.id)) == 2


def test_a_tpe_space_whose_ends_make_invalid_jobs_is_refused(session, tenant):
    space = {"network.layers.0.units": {"randint": [0, 4]}}
    with pytest.raises(Invalid) as err:
        submit(session, tenant, base=VALIDATED, search=tpe(space=space))
    assert err.value.errors[0][0] == ["body", "search", "space", "network.layers.0.units"]
