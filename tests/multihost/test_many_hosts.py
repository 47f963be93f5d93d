"""Deltaflow on several hosts (network namespaces on one bridge, ``tests/support/netns.py``).

1. A sweep spreads over the worker hosts.
2. A host whose cable is pulled mid-job loses the job to another host once its lease
   expires; the job succeeds with every epoch once, equal to an uninterrupted run.
3. Plugged back in while the new run trains, the cut-off host's stale run is fenced: no
   row of the job is written from its address after the handover (``write_log.py``).

Scenarios 2 and 3 are one story (the ``partition`` fixture acts, the tests check), so the
long job runs once. Nothing waits for a guessed time: every step waits on a condition in
the database, a log or the broker, with generous deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.faults.harness.integrity import JobAudit
from tests.faults.harness.progress import job_row, wait_for_running_job
from tests.faults.harness.specs import tiny_job
from tests.faults.harness.verdict import settle
from tests.faults.harness.waiting import wait_until
from tests.support.netns import Host

from . import write_log
from .cluster import Claim, Cluster
from .results import Row

pytestmark = [pytest.mark.integration, pytest.mark.multihost]

SWEEP_SEEDS = list(range(9))
SWEEP_EPOCHS = 300
CUT_EPOCHS = 3000  # ~15 s in a worker here: the cut and the heal both land while it runs
STEP_SECONDS = 120.0  # deadline of each wait (never a measure of speed)


def test_a_sweep_spreads_over_the_hosts(cluster: Cluster, record_row) -> None:
    base = tiny_job("sweep", epochs=SWEEP_EPOCHS)
    del base["name"]
    job_ids = cluster.api.submit_batch(
        {"name": "sweep", "base": base, "grid": {"training.seed": SWEEP_SEEDS}}
    )
    assert len(job_ids) == len(SWEEP_SEEDS)

    tally, _ = settle(cluster.stack, "sweep", job_ids, lambda _: None, STEP_SECONDS)
    claims = [claim for claim in cluster.claims() if claim.job_id in job_ids]
    row = Row.of(f"sweep of {len(job_ids)} jobs", tally, claims)
    record_row(row)

    assert tally.succeeded == len(job_ids)
    assert {claim.job_id for claim in claims} == set(job_ids), claims
    assert row.hosts_used > 1, f"every job ran on one host: {claims}"


@dataclass
class Partition:
    job_id: str
    victim: Host  # the host that ran the job when its cable was pulled
    stale_attempt: int  # the fencing token of its run, cut off mid-job
    handover_mark: int  # the last row write when another host had claimed the job
    audit: JobAudit
    claims: list[Claim]
    row: Row


@pytest.fixture(scope="module")
def partition(cluster: Cluster, record_row) -> Partition:
    """Pull the cable of the host running a long job until another host has claimed it,
    then plug it back while the new run trains, and wait for the stale run to give up."""
    job_id = cluster.api.submit(tiny_job("cut-off", epochs=CUT_EPOCHS))
    checkpoint_epochs = cluster.stack.settings.checkpoint_epochs
    running = wait_for_running_job(cluster.factory, [job_id], 2 * checkpoint_epochs, STEP_SECONDS)
    assert running.lease_owner, running
    victim = cluster.host(running.lease_owner.split(":")[0])  # "<hostname>:<pid>"
    victim_worker = cluster.worker_of(victim)
    victim.cut()

    wait_until(
        lambda: job_row(cluster.factory, job_id).attempt > running.attempt,
        STEP_SECONDS,
        f"another host to claim the job of cut-off {victim.name}",
        describe=lambda: repr(job_row(cluster.factory, job_id)),
    )
    # From here on, any row the cut-off host writes would be a stale write.
    handover_mark = write_log.mark(cluster.stack.engine)
    log_at_heal = len(victim_worker.log_text())
    victim.heal()

    fenced = f"job={job_id} attempt={running.attempt} lost its fence"
    wait_until(
        lambda: fenced in victim_worker.log_text(),
        STEP_SECONDS,
        f"{victim.name}'s stale run to find itself fenced",
        describe=victim_worker.log_tail,
    )
    stale_run_end = _how_it_ended(
        after_heal=fenced in victim_worker.log_text()[log_at_heal:],
        job_status=job_row(cluster.factory, job_id).status,
    )
    wait_until(
        lambda: cluster.answers_ping(victim),
        STEP_SECONDS,
        f"{victim.name}'s worker to answer through the broker again",
        describe=victim_worker.log_tail,
    )

    tally, audits = settle(cluster.stack, "cut", [job_id], lambda _: None, STEP_SECONDS)
    claims = [claim for claim in cluster.claims() if claim.job_id == job_id]
    row = Row.of("host cut mid-job, then healed", tally, claims)
    stale_writes = write_log.writes(
        cluster.stack.engine, job_id, victim.address, after=handover_mark
    )
    row.stale_writes, row.stale_run = str(stale_writes), stale_run_end
    record_row(row)
    return Partition(
        job_id=job_id,
        victim=victim,
        stale_attempt=running.attempt,
        handover_mark=handover_mark,
        audit=audits[job_id],
        claims=claims,
        row=row,
    )


def _how_it_ended(*, after_heal: bool, job_status: str) -> str:
    if not after_heal:
        # It failed to extend its lease for a whole lease period and stopped by itself.
        return "gave up during the cut"
    if job_status == "running":
        return "refused while the new run trained"  # the attempt number fenced it
    return "refused after the job finished"


def test_a_cut_off_host_loses_its_job_to_another_host(partition: Partition) -> None:
    stale = [c for c in partition.claims if c.attempt == partition.stale_attempt]
    later = [c for c in partition.claims if c.attempt > partition.stale_attempt]
    assert [c.host for c in stale] == [partition.victim.name], partition.claims
    assert later, f"no other run claimed the job: {partition.claims}"
    assert all(c.host != partition.victim.name for c in later), partition.claims
    # settle() already checked: every epoch once, each equal to an uninterrupted run.
    assert partition.audit.status == "succeeded", partition.audit
    assert partition.audit.weights_equal is True, partition.audit
    assert partition.audit.attempt == max(c.attempt for c in later)


def test_a_healed_host_is_fenced_and_writes_nothing(cluster: Cluster, partition: Partition) -> None:
    # The fixture waited for the stale run's "lost its fence" and for the healed host's
    # worker to answer through the broker: the host is back. Did it write anything?
    engine, job_id, address = cluster.stack.engine, partition.job_id, partition.victim.address
    assert write_log.writes(engine, job_id, address) > 0, "the write log misses the victim"
    assert write_log.writes(engine, job_id, address, after=partition.handover_mark) == 0
    assert [c for c in partition.claims if c.host == partition.victim.name] == [
        c for c in partition.claims if c.attempt == partition.stale_attempt
    ], partition.claims  # it never claimed the job again
