"""Asynchronous successive halving (ASHA): stop the trials that fall behind at a rung.

Rungs sit at ``min_epochs * reduction_factor**k`` epochs. When a trial reaches a rung, the
trials that reached it so far (itself included) are ranked by ``metric`` there; once there
are at least ``reduction_factor`` of them, a trial outside the best
``max(1, n // reduction_factor)`` is stopped (``schemas.batch.AshaSpec``). The first
trials at a rung always go on: asynchronous halving never waits for a full rung.
Hyperband (``hyperband.py``) runs the same rule within each of its brackets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.schedulers.base import (
    CONTINUE,
    Decision,
    Report,
    Scheduler,
    Sweep,
    rank_of,
    sign,
)


def rungs(config: Mapping[str, Any], up_to: int) -> list[int]:
    """The rung epochs of an ASHA config, up to and including ``up_to``."""
    ladder, epoch = [], int(config["min_epochs"])
    while epoch <= up_to:
        ladder.append(epoch)
        epoch *= int(config["reduction_factor"])
    return ladder


def is_rung(min_epochs: int, eta: int, epoch: int) -> bool:
    while min_epochs < epoch:
        min_epochs *= eta
    return min_epochs == epoch


def halve(
    report: Report,
    board: Mapping[str, float],
    eta: int,
    mode: str,
    order: Mapping[str, int],
) -> Decision:
    """Successive halving at one rung: stop the trial unless it is in the best 1/η."""
    me = report.trial.id
    if me not in board or len(board) < eta:
        return CONTINUE  # too few trials at this rung to judge
    rank = rank_of(board, me, order)
    if rank <= max(1, len(board) // eta):
        return CONTINUE
    value = sign(mode) * board[me]
    return Decision("stop", {"epoch": report.epoch, "value": value, "rank": rank, "of": len(board)})


class Asha(Scheduler):
    name = "asha"

    def due(self, config: Mapping[str, Any], index: int, epoch: int) -> bool:
        return is_rung(int(config["min_epochs"]), int(config["reduction_factor"]), epoch)

    def decide(self, config: Mapping[str, Any], report: Report, sweep: Sweep) -> Decision:
        order = {t.id: t.index for t in sweep.trials}
        board = {t: v for t, v in sweep.curves.at(report.epoch).items() if t in order}
        return halve(report, board, int(config["reduction_factor"]), config["mode"], order)
