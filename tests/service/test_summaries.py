"""Job summaries: kept by the run's flush (and a PBT exploit) in the same transaction as
the curve, equal to what the stored curve says, on SQLite and PostgreSQL; the migration
backfills jobs that ran before it."""

from __future__ import annotations

import random

import pytest
from alembic import command
from sqlalchemy import delete, select, text

from service import curve_store, job_claim, job_finish, job_progress, summaries
from service.db import make_engine, transaction
from service.migrate import alembic_config, upgrade
from service.models import CurvePoint, Job, JobSummary, Tenant, curve_levels
from service.schemas.names import METRICS, SUMMARY_STATS
from tests.service.conftest import SPIRALS_SPEC


def new_job(factory, epochs=100):
    with transaction(factory) as session:
        tenant = Tenant(name=f"t{random.random()}")
        session.add(tenant)
        session.flush()
        job = Job(tenant_id=tenant.id, name="j", spec=SPIRALS_SPEC, epochs=epochs)
        session.add(job)
        session.flush()
        return job.id


def truth(factory, job_id):
    """The summary computed the slow way, from every stored point."""
    with factory() as session:
        rows = session.execute(
            select(CurvePoint).where(CurvePoint.job_id == job_id).order_by(CurvePoint.epoch)
        ).scalars().all()  # fmt: skip
        out = {}
        for metric in METRICS:
            pairs = [(getattr(r, metric), r.epoch) for r in rows if getattr(r, metric) is not None]
            if not pairs:
                out[metric] = dict.fromkeys(SUMMARY_STATS)
                continue
            low = min(v for v, _ in pairs)
            high = max(v for v, _ in pairs)
            out[metric] = {
                "min": low,
                "max": high,
                "last": getattr(rows[-1], metric),
                "argmin_epoch": min(e for v, e in pairs if v == low),
                "argmax_epoch": min(e for v, e in pairs if v == high),
            }
        return out


def stored(factory, job_id):
    with factory() as session:
        return summaries.summary_dict(session.get(JobSummary, job_id))


def point(epoch, rng, validation=True):
    loss = round(rng.uniform(0.0, 1.0), 3)  # coarse: ties happen, argmin keeps the first
    return {
        "epoch": epoch,
        "train_loss": loss,
        "val_loss": round(rng.uniform(0.0, 1.0), 3) if validation else None,
        "train_accuracy": round(rng.uniform(0.0, 1.0), 1),
        "val_accuracy": None,
        "seconds": 0.01,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flushes_keep_the_summary_equal_to_the_curve_through_resumes(any_sessions, seed):
    """Chunks of points as a run flushes them; every few flushes the run is lost and
    another claims the job and recomputes, bit for bit, the epochs after its checkpoint
    (stored already: skipped by the curve and by the summary alike)."""
    factory, rng = any_sessions, random.Random(seed)
    job_id = new_job(factory)
    curve = [point(e, rng) for e in range(1, 61)]
    claim = job_claim.claim(factory, job_id, "w", lease_seconds=60, max_attempts=99)
    done = 0
    while done < len(curve):
        if rng.random() < 0.3 and done:  # lost run: resume from an earlier checkpoint
            with transaction(factory) as session:
                session.execute(text("UPDATE jobs SET status='queued' WHERE id=:i"), {"i": job_id})
            claim = job_claim.claim(factory, job_id, "w", lease_seconds=60, max_attempts=99)
            done = rng.randrange(0, done)
        size = rng.randint(1, 7)
        chunk = curve[done : done + size]
        assert job_progress.flush(factory, job_id, claim.attempt, chunk, lease_seconds=60).alive
        done += size
        assert stored(factory, job_id) == truth(factory, job_id)
    assert stored(factory, job_id)["val_accuracy"] == dict.fromkeys(SUMMARY_STATS)


@pytest.mark.parametrize("flushed_before", [False, True])
def test_a_finish_that_believes_it_writes_first_keeps_the_summary_right(
    any_sessions, flushed_before
):
    """``complete(first_write=True)`` inserts the summary and computes the stored levels
    from its points without reading; if the job had points after all, the insert does
    nothing and both are merged as usual."""
    factory, rng = any_sessions, random.Random(7)
    job_id = new_job(factory, epochs=20)
    claim = job_claim.claim(factory, job_id, "w", lease_seconds=60, max_attempts=9)
    curve = [point(e, rng) for e in range(1, 21)]
    if flushed_before:
        assert job_progress.flush(factory, job_id, claim.attempt, curve[:9], lease_seconds=60).alive
    rest = curve[9:] if flushed_before else curve
    done = job_finish.complete(
        factory, job_id, claim.attempt, rest, weights=b"w", meta={}, first_write=True
    )
    assert done is not None
    assert done.status == "succeeded"
    assert stored(factory, job_id) == truth(factory, job_id)
    with factory() as session:
        levels = select(curve_levels).where(curve_levels.c.job_id == job_id)
        written = sorted(tuple(row) for row in session.execute(levels))
        session.execute(delete(curve_levels).where(curve_levels.c.job_id == job_id))
        curve_store.refresh_levels(session, job_id, 1, 20)  # from the stored points
        assert sorted(tuple(row) for row in session.execute(levels)) == written
        session.rollback()


def test_a_stale_runs_flush_changes_no_summary(sessions):
    job_id = new_job(sessions)
    rng = random.Random(5)
    first = job_claim.claim(sessions, job_id, "a", lease_seconds=60, max_attempts=9)
    job_progress.flush(sessions, job_id, first.attempt, [point(1, rng)], lease_seconds=60)
    before = stored(sessions, job_id)
    with transaction(sessions) as session:
        session.execute(text("UPDATE jobs SET status='queued' WHERE id=:i"), {"i": job_id})
    job_claim.claim(sessions, job_id, "b", lease_seconds=60, max_attempts=9)
    stale = [{**point(2, rng), "train_loss": -1.0}]
    assert not job_progress.flush(sessions, job_id, first.attempt, stale, lease_seconds=60).alive
    assert stored(sessions, job_id) == before


def test_a_job_without_points_has_a_summary_of_nulls(sessions):
    job_id = new_job(sessions)
    assert stored(sessions, job_id) == {m: dict.fromkeys(SUMMARY_STATS) for m in METRICS}


def test_the_migration_backfills_jobs_that_ran_before_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    engine = make_engine(url)
    rng = random.Random(9)
    curve = [point(e, rng, validation=e % 2 == 0) for e in range(1, 30)]
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', '2026-01-01')")
        )
        for job_id in ("a", "b"):
            connection.execute(
                text(
                    "INSERT INTO jobs (id, tenant_id, created_at, name, status, queue, spec,"
                    " epochs, epoch, attempt, releases, cancel_requested, version, updated_at)"
                    " VALUES"
                    " (:i, 't', '2026-01-01', 'j', 'succeeded', 'batch', '{}', 30, 29, 1, 0, 0, 1,"
                    " '2026-01-01')"
                ),
                {"i": job_id},
            )
        for p in curve:
            connection.execute(
                text(
                    "INSERT INTO curve_points (job_id, epoch, train_loss, val_loss, train_accuracy,"
                    " val_accuracy, seconds) VALUES ('a', :epoch, :train_loss, :val_loss,"
                    " :train_accuracy, :val_accuracy, :seconds)"
                ),
                p,
            )
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    from service.db import make_sessionmaker

    factory = make_sessionmaker(engine)
    try:
        assert stored(factory, "a") == truth(factory, "a")
        assert stored(factory, "a")["val_loss"]["last"] is None  # epoch 29 had no validation
        with factory() as session:
            assert session.get(JobSummary, "b") is None  # no points: nothing to sum up
    finally:
        engine.dispose()


@pytest.mark.parametrize("parent_ahead", [True, False])
def test_a_pbt_exploit_rebuilds_the_summary_from_the_curve_it_goes_on_from(sessions, parent_ahead):
    """The exploiting trial's curve is cut back (or filled from the parent's): its summary
    must forget the epochs it lost and take the ones it copied."""
    from tests.service.test_reports import PBT, VALIDATED, claim, report, submit

    with sessions() as session:
        tenant = Tenant(name="pbt")
        session.add(tenant)
        session.commit()
        _, ids, _ = submit(
            session, tenant.id, base=VALIDATED,
            grid={"training.optimizer.learning_rate": [0.01, 0.02]}, scheduler=PBT,
        )  # fmt: skip
    good, bad = claim(sessions, ids[0]), claim(sessions, ids[1])
    if parent_ahead:  # the bad trial copies epoch 4; its own 1..2 stay, 3..4 are the parent's
        report(sessions, good, [1, 2], [0.5, 0.4], checkpoint=(2, b"g2"))
        report(sessions, good, [3, 4], [0.3, 0.2], checkpoint=(4, b"g4"))
        decision = report(sessions, bad, [1, 2], [0.05, 0.9], checkpoint=(2, b"b2"))
    else:  # the bad trial is ahead and goes back to epoch 2: its best (epoch 3) is lost
        report(sessions, good, [1, 2], [0.1, 0.1], checkpoint=(2, b"g2"))
        decision = report(sessions, bad, [1, 2, 3, 4], [0.9, 0.9, 0.01, 0.9], checkpoint=(4, b"b4"))
    assert decision.action == "exploit"
    assert stored(sessions, ids[1]) == truth(sessions, ids[1])
    expected = (0.05, 1, 0.2) if parent_ahead else (0.9, 1, 0.9)
    summary = stored(sessions, ids[1])["val_loss"]
    assert (summary["min"], summary["argmin_epoch"], summary["last"]) == expected
    # The run resumes from the adopted checkpoint and goes on.
    again = claim(sessions, ids[1])
    start = 5 if parent_ahead else 3
    job_progress.flush(sessions, ids[1], again.attempt, [
        {"epoch": start, "train_loss": 0.01, "val_loss": 0.01, "seconds": 0.1}
    ], lease_seconds=60)  # fmt: skip
    assert stored(sessions, ids[1]) == truth(sessions, ids[1])
    assert stored(sessions, ids[1])["val_loss"]["argmin_epoch"] == start
