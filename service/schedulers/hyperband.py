"""Hyperband (Li et al., 2018): brackets of successive halving, asynchronous within each.

With ``r = min_epochs``, ``R = max_epochs`` and ``η = reduction_factor``, let ``s_max`` be
the largest ``s`` with ``r * η**s <= R``. Bracket ``s`` (0..s_max) halves at the rungs
``r * η**j`` for ``s_max - s <= j < s_max``: bracket ``s_max`` starts at ``r`` (the boldest),
bracket 0 has no rung (every trial runs to the end, as in random search). Within a bracket
the rule is ASHA's (``asha.halve``), among the trials of that bracket only.

Trials are dealt to brackets deterministically: one Hyperband iteration holds
``n_s = ceil((s_max + 1) / (s + 1) * η**s)`` trials of bracket ``s``; that list of bracket
numbers, shuffled by ``numpy.random.default_rng(seed)``, is repeated, and the trial with
batch index ``i`` takes entry ``i mod len``. So brackets get Hyperband's shares, and a
trial's bracket depends on its index and the seed only (a TPE trial created late included).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from service.schedulers.asha import halve
from service.schedulers.base import CONTINUE, Decision, Report, Scheduler, Sweep


def highest_bracket(min_epochs: int, max_epochs: int, eta: int) -> int:
    s_max = 0
    while min_epochs * eta ** (s_max + 1) <= max_epochs:
        s_max += 1
    return s_max


@functools.lru_cache(maxsize=64)
def _deal(min_epochs: int, max_epochs: int, eta: int, seed: int) -> tuple[int, ...]:
    s_max = highest_bracket(min_epochs, max_epochs, eta)
    deck = []
    for s in range(s_max, -1, -1):
        deck += [s] * math.ceil((s_max + 1) / (s + 1) * eta**s)
    order = np.random.default_rng(seed).permutation(len(deck))
    return tuple(deck[i] for i in order)


def _key(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    return (
        int(config["min_epochs"]),
        int(config["max_epochs"]),
        int(config["reduction_factor"]),
        int(config.get("seed") or 0),
    )


def bracket_of(config: Mapping[str, Any], index: int) -> int:
    deck = _deal(*_key(config))
    return deck[index % len(deck)]


def bracket_rungs(config: Mapping[str, Any], bracket: int) -> list[int]:
    r, big_r, eta, _ = _key(config)
    s_max = highest_bracket(r, big_r, eta)
    return [r * eta**j for j in range(s_max - bracket, s_max)]


class Hyperband(Scheduler):
    name = "hyperband"

    def due(self, config: Mapping[str, Any], index: int, epoch: int) -> bool:
        return epoch in bracket_rungs(config, bracket_of(config, index))

    def decide(self, config: Mapping[str, Any], report: Report, sweep: Sweep) -> Decision:
        bracket = bracket_of(config, report.trial.index)
        order = {t.id: t.index for t in sweep.trials if bracket_of(config, t.index) == bracket}
        if report.trial.id not in order:
            return CONTINUE
        board = {t: v for t, v in sweep.curves.at(report.epoch).items() if t in order}
        decision = halve(report, board, int(config["reduction_factor"]), config["mode"], order)
        if decision.action == "stop":
            return Decision("stop", {**decision.detail, "bracket": bracket})
        return decision
