"""The scheduler interface, and how a decision is carried out and remembered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.jobs import cancel_job
from service.models import Batch
from service.problems import Conflict
from service.schemas.names import JobStatus


@dataclass(frozen=True)
class Stop:
    """A decision to stop a running job: at which epoch, with what value, ranked how."""

    job_id: str
    tenant_id: str
    rung: int
    value: float
    rank: int
    of: int


class Scheduler:
    """Decides, from a batch's state, which of its running jobs to stop.

    ``config`` is the batch's scheduler spec as stored (``batches.spec["scheduler"]``,
    its mode resolved). ``decide`` only reads; ``record_stops`` carries the decisions out.
    """

    name: ClassVar[str] = ""

    def decide(self, session: Session, batch_id: str, config: dict[str, Any]) -> list[Stop]:
        raise NotImplementedError


def record_stops(session: Session, batch_id: str, decisions: Sequence[Stop]) -> list[str]:
    """Cancel each job (its run stops at its next flush) and record why in the batch's
    ``scheduler_state["stopped"]``; returns the ids actually stopped. Commits."""
    done = []
    for stop in decisions:
        try:
            job = cancel_job(session, stop.tenant_id, stop.job_id)
        except Conflict:  # it finished first: it keeps its result
            continue
        if job.status == JobStatus.cancelling or job.status == JobStatus.cancelled:
            done.append(stop)
    if not done:
        return []
    batch = session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())
    assert batch is not None
    state = dict(batch.scheduler_state or {})
    stopped = dict(state.get("stopped", {}))
    for stop in done:
        stopped.setdefault(
            stop.job_id,
            {"epoch": stop.rung, "value": stop.value, "rank": stop.rank, "of": stop.of},
        )
    state["stopped"] = stopped
    batch.scheduler_state = state
    session.commit()
    return [stop.job_id for stop in done]
