"""Asynchronous successive halving (ASHA): stop the jobs that fall behind at a rung.

Rungs sit at ``min_epochs * reduction_factor**k`` epochs. A running job that reached a
rung is stopped once at least ``reduction_factor`` jobs reached that rung and it is not
among the best ``max(1, n // reduction_factor)`` of those ``n`` by ``metric`` at that
epoch (``schemas.batch.AshaSpec``). Stopped jobs end ``cancelled``; the batch summary
says which rung stopped them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import CurvePoint, Job
from service.schedulers.base import Scheduler, Stop
from service.schemas.names import JobStatus


def rungs(config: dict[str, Any], up_to: int) -> list[int]:
    """The rung epochs of an ASHA config, up to and including ``up_to``."""
    ladder, epoch = [], int(config["min_epochs"])
    while epoch <= up_to:
        ladder.append(epoch)
        epoch *= int(config["reduction_factor"])
    return ladder


class Asha(Scheduler):
    name = "asha"

    def decide(self, session: Session, batch_id: str, config: dict[str, Any]) -> list[Stop]:
        """The running jobs of a batch that fell behind at the last rung they reached."""
        jobs = session.execute(
            select(
                Job.id, Job.tenant_id, Job.batch_index, Job.status, Job.epoch, Job.cancel_requested
            ).where(Job.batch_id == batch_id)
        ).all()
        running = [j for j in jobs if j.status == JobStatus.running and not j.cancel_requested]
        ladder = rungs(config, max((j.epoch for j in running), default=0))
        if not running or not ladder:
            return []
        column = getattr(CurvePoint, config["metric"])
        order = {j.id: j.batch_index for j in jobs}
        boards: dict[int, list[tuple[float, int, str]]] = {epoch: [] for epoch in ladder}
        rows = session.execute(
            select(CurvePoint.job_id, CurvePoint.epoch, column).where(
                CurvePoint.job_id.in_(list(order)),
                CurvePoint.epoch.in_(ladder),
                column.is_not(None),
            )
        )
        sign = 1.0 if config["mode"] == "min" else -1.0
        reached: dict[str, int] = {}
        for job_id, epoch, value in rows:
            boards[epoch].append((sign * value, order[job_id], job_id))
            reached[job_id] = max(reached.get(job_id, 0), epoch)
        eta = int(config["reduction_factor"])
        decisions = []
        for job in running:
            rung = reached.get(job.id)
            if rung is None or len(boards[rung]) < eta:
                continue  # not at a rung yet, or too few jobs there to judge
            board = sorted(boards[rung])
            rank = next(i for i, entry in enumerate(board, 1) if entry[2] == job.id)
            if rank > max(1, len(board) // eta):
                value = sign * board[rank - 1][0]
                decisions.append(Stop(job.id, job.tenant_id, rung, value, rank, len(board)))
        return decisions
