"""A trial's report, from the database: its scheduler decides inside the run's flush.

A run of a batch job with a scheduler asks ``reporting(factory, claim)`` once; at each epoch
where ``due`` holds it flushes its points (and, for PBT, its checkpoint) with
``decide=reporting.at(epoch, attempt)``, so the points, the checkpoint, the decision and
what the decision does commit in one transaction (``job_progress.flush``):

- ``continue``: recorded; the run goes on.
- ``stop``: the job ends ``cancelled`` (``job_decisions.stop_trial``); the run ends.
- ``exploit``: the job takes the parent's checkpoint and explored spec and is queued again
  (``job_decisions.exploit``); the run ends and the job is dispatched to resume from there.

Every decision is a ``trial_decisions`` row keyed by (job, generation, epoch). A report that
finds one already — a run resumed from a checkpoint before an epoch it had reported —
keeps it: decisions taken stand, whatever the sweep looks like now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from service import job_decisions
from service.job_claim import Claim
from service.models import Batch, Checkpoint, CurvePoint, Job, TrialDecision
from service.problems import Invalid
from service.schedulers.base import CONTINUE, Decision, Report, Scheduler, Sweep, Trial, sign
from service.schedulers.registry import SCHEDULERS
from service.schemas.names import UNFINISHED
from service.sweeps import flatten, set_path
from service.timeutil import utcnow
from service.validation import parse_spec

CHUNK = 100  # (job, epoch) pairs per query: bounds the OR-chain


@dataclass(frozen=True)
class Reporting:
    """What a run of one batch job needs to report to its batch's scheduler."""

    scheduler: Scheduler
    config: dict[str, Any]
    sweep: dict[str, Any]
    varied: list[str]
    batch_id: str
    job_id: str
    index: int

    def due(self, epoch: int) -> bool:
        return self.scheduler.due(self.config, self.index, epoch)

    @property
    def checkpoints(self) -> bool:
        return self.scheduler.checkpoints_at_reports

    def at(self, epoch: int, attempt: int) -> Callable[[Session], Decision]:
        return lambda session: report(session, self, epoch, attempt)


def reporting(factory: sessionmaker[Session], claim: Claim) -> Reporting | None:
    """The claim's batch scheduler, or None (not a batch job, or no scheduler)."""
    if claim.batch_id is None or claim.batch_index is None:
        return None
    batch: Any = None
    if claim.batch_spec is not None:  # read with the claim: no transaction of its own
        batch = SimpleNamespace(spec=claim.batch_spec, varied=claim.batch_varied or [])
    else:
        with factory() as session:
            batch = session.execute(
                select(Batch.spec, Batch.varied).where(Batch.id == claim.batch_id)
            ).one_or_none()
    config = batch.spec.get("scheduler") if batch else None
    scheduler = SCHEDULERS.get(config.get("name", "")) if config else None
    if batch is None or scheduler is None or config is None:
        return None
    return Reporting(
        scheduler, config, batch.spec, list(batch.varied), claim.batch_id, claim.job_id,
        claim.batch_index,
    )  # fmt: skip


def report(session: Session, reporting: Reporting, epoch: int, attempt: int) -> Decision:
    """Decide (or find the decision) at ``epoch`` and carry it out, in the flush's
    transaction (whose first write, the fenced update of this job, already won)."""
    job_id = reporting.job_id
    exploits = TrialDecision.job_id == job_id, TrialDecision.action == "exploit"
    generation = int(session.scalar(select(func.count()).where(*exploits)) or 0)
    stored = session.get(TrialDecision, (job_id, generation, epoch))
    if stored is not None:  # taken before this run was resumed: it stands
        return Decision(stored.action, stored.detail) if stored.action == "continue" else CONTINUE
    me = session.execute(select(Job.cancel_requested, Job.origin).where(Job.id == job_id)).one()
    if me.cancel_requested:  # the user's cancel wins; the run obeys it
        return CONTINUE
    trials = load_trials(session, reporting.batch_id)
    mine = next(t for t in trials if t.id == job_id)
    config = reporting.config
    curves = StoredCurves(session, [t.id for t in trials], config["metric"], config["mode"])
    sweep = Sweep(trials, curves, reporting.sweep)
    decision = reporting.scheduler.decide(config, Report(mine, epoch, generation), sweep)
    now = utcnow()
    if decision.action == "stop":
        job_decisions.stop_trial(session, job_id, attempt, now)
    elif decision.action == "exploit":
        decision = _exploit(session, reporting, decision, attempt, generation, me.origin, now)
    session.add(
        TrialDecision(
            job_id=job_id,
            generation=generation,
            epoch=epoch,
            batch_id=reporting.batch_id,
            action=decision.action,
            detail=decision.detail,
            created_at=now,
        )
    )
    return decision


def _exploit(
    session: Session,
    reporting: Reporting,
    decision: Decision,
    attempt: int,
    generation: int,
    origin: dict[str, Any] | None,
    now: Any,
) -> Decision:
    assert decision.parent is not None
    parent_spec = session.scalar(select(Job.spec).where(Job.id == decision.parent))
    if parent_spec is None:
        return CONTINUE
    spec, perturbed = explored_spec(parent_spec, decision.perturbed)
    leaves = flatten(spec)
    params = {path: leaves[path] for path in reporting.varied if path in leaves}
    first = (origin or {}).get("initial", origin) if (origin or {}).get("kind") == "pbt" else origin
    new_origin = {
        "kind": "pbt",
        "parent": decision.parent,
        "epoch": None,
        "perturbed": perturbed,
        "generation": generation + 1,
        "initial": first,
    }
    copied = job_decisions.exploit(
        session, reporting.job_id, attempt, decision.parent, spec, params, new_origin, now
    )
    if copied is None:
        return CONTINUE
    detail = {**decision.detail, "parent_epoch": copied, "perturbed": perturbed}
    return Decision("exploit", detail, decision.parent, perturbed)


def explored_spec(
    parent: Mapping[str, Any], perturbed: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parent's spec with each explored value the job spec accepts (a value it refuses,
    e.g. a momentum pushed to 1, keeps the parent's); returns (canonical spec, values set)."""
    spec, kept = dict(parent), {}
    for path, value in perturbed.items():
        candidate = set_path(spec, path, value)
        try:
            parse_spec(candidate)
        except Invalid:
            continue
        spec, kept[path] = candidate, value
    return parse_spec(spec).model_dump(mode="json"), kept


def load_trials(session: Session, batch_id: str) -> list[Trial]:
    rows = session.execute(
        select(
            Job.id, Job.batch_index, Job.status, Job.epoch, Job.params,
            Checkpoint.epoch.label("checkpoint"),
        )
        .outerjoin(Checkpoint, Checkpoint.job_id == Job.id)
        .where(Job.batch_id == batch_id)
        .order_by(Job.batch_index)
    ).all()  # fmt: skip
    unfinished = {s.value for s in UNFINISHED}
    return [
        Trial(r.id, r.batch_index, r.epoch, r.status in unfinished, r.checkpoint, r.params or {})
        for r in rows
    ]


class StoredCurves:
    """``schedulers.base.Curves`` read from ``curve_points`` (primary-key range scans)."""

    def __init__(self, session: Session, job_ids: Sequence[str], metric: str, mode: str) -> None:
        self.session = session
        self.ids = list(job_ids)
        self.column = getattr(CurvePoint, metric)
        self.sign = sign(mode)

    def _of(self, *where: Any) -> Any:
        return [CurvePoint.job_id.in_(self.ids), self.column.is_not(None), *where]

    def at(self, epoch: int) -> dict[str, float]:
        rows = self.session.execute(
            select(CurvePoint.job_id, self.column).where(*self._of(CurvePoint.epoch == epoch))
        )
        return {job_id: self.sign * value for job_id, value in rows}

    def running_means(self, epoch: int) -> dict[str, float]:
        rows = self.session.execute(
            select(CurvePoint.job_id, func.avg(self.column))
            .where(*self._of(CurvePoint.epoch <= epoch))
            .group_by(CurvePoint.job_id)
            .having(func.max(CurvePoint.epoch) >= epoch)
        )
        return {job_id: self.sign * float(mean) for job_id, mean in rows}

    def best(self, trial: str, epoch: int) -> float | None:
        extreme = func.min if self.sign > 0 else func.max
        value = self.session.scalar(
            select(extreme(self.column)).where(
                CurvePoint.job_id == trial, CurvePoint.epoch <= epoch, self.column.is_not(None)
            )
        )
        return None if value is None else self.sign * value

    def latest(self, trials: Mapping[str, int], every: int) -> dict[str, tuple[int, float]]:
        wanted = [(t, (last // every) * every) for t, last in trials.items() if last >= every]
        out: dict[str, tuple[int, float]] = {}
        for start in range(0, len(wanted), CHUNK):
            pairs = [
                and_(CurvePoint.job_id == t, CurvePoint.epoch == e)
                for t, e in wanted[start : start + CHUNK]
            ]
            rows = self.session.execute(
                select(CurvePoint.job_id, CurvePoint.epoch, self.column).where(
                    or_(*pairs), self.column.is_not(None)
                )
            )
            out.update({job_id: (epoch, self.sign * value) for job_id, epoch, value in rows})
        return out
