"""The scheduler interface: at a trial's report, continue, stop it, or have it exploit another.

A scheduler is pure: it reads the ``Sweep`` — ``Trial`` rows and ``Curves`` (metric values,
signed so that lower is better) — and returns a ``Decision``. ``service.schedulers.reports``
feeds it from the database inside the run's flush transaction and carries the decision out;
the benchmark and the unit tests feed it from memory (``MemoryCurves``).

``due(config, index, epoch)`` says at which epochs a trial reports (ASHA's rungs, PBT's
intervals); only there is a decision taken, recorded, and never taken again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np


class Curves(Protocol):
    """The sweep's curves for one metric, signed: lower is better."""

    def at(self, epoch: int) -> dict[str, float]:
        """Each trial's value at ``epoch`` (trials that reached it)."""
        ...

    def running_means(self, epoch: int) -> dict[str, float]:
        """Each trial that reached ``epoch``: the mean of its values over epochs 1..epoch."""
        ...

    def best(self, trial: str, epoch: int) -> float | None:
        """A trial's best value over epochs 1..epoch."""
        ...

    def latest(self, trials: Mapping[str, int], every: int) -> dict[str, tuple[int, float]]:
        """For ``{trial: its last epoch}``: (epoch, value) at its last multiple of ``every``."""
        ...


@dataclass(frozen=True)
class Trial:
    """A trial of the sweep as a scheduler sees it."""

    id: str
    index: int
    epoch: int = 0
    live: bool = True  # not finished: running or waiting to
    checkpoint: int | None = None  # the epoch of its latest checkpoint (a PBT donor needs one)
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """A trial reached one of its report epochs; ``generation`` counts its exploits."""

    trial: Trial
    epoch: int
    generation: int = 0


@dataclass(frozen=True)
class Decision:
    """``continue``, ``stop`` or ``exploit`` (``parent`` and ``perturbed`` then), with the
    evidence kept in ``detail`` (e.g. ``{epoch, value, rank, of}`` for a stop)."""

    action: str
    detail: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    perturbed: dict[str, Any] = field(default_factory=dict)

    @property
    def ends_run(self) -> bool:
        return self.action != "continue"


CONTINUE = Decision("continue")


@dataclass(frozen=True)
class Sweep:
    """What a scheduler reads: the batch's trials, their curves, and the batch's stored spec
    (PBT explores its search space)."""

    trials: Sequence[Trial]
    curves: Curves
    spec: Mapping[str, Any] = field(default_factory=dict)


class Scheduler:
    """Decides at each report of a trial. ``config`` is the batch's scheduler spec as stored
    (mode resolved, seed chosen)."""

    name: ClassVar[str] = ""
    # PBT copies checkpoints: its trials checkpoint at every report.
    checkpoints_at_reports: ClassVar[bool] = False

    def due(self, config: Mapping[str, Any], index: int, epoch: int) -> bool:
        raise NotImplementedError

    def decide(self, config: Mapping[str, Any], report: Report, sweep: Sweep) -> Decision:
        raise NotImplementedError


def sign(mode: str) -> float:
    """Values are compared as ``sign * value``: lower is better."""
    return 1.0 if mode == "min" else -1.0


def rank_of(board: Mapping[str, float], trial: str, order: Mapping[str, int]) -> int:
    """1-based rank of ``trial`` on ``board`` (ties go to the earlier trial)."""
    ranked = sorted(board, key=lambda t: (board[t], order.get(t, 0)))
    return ranked.index(trial) + 1


class MemoryCurves:
    """``Curves`` over in-memory lists: ``values[trial][e - 1]`` is the value at epoch e
    (already signed). The benchmark and the unit tests drive schedulers with it."""

    def __init__(self, values: Mapping[str, Sequence[float]]) -> None:
        self.values = {t: np.asarray(v, dtype=np.float64) for t, v in values.items()}

    def at(self, epoch: int) -> dict[str, float]:
        return {t: float(v[epoch - 1]) for t, v in self.values.items() if len(v) >= epoch}

    def running_means(self, epoch: int) -> dict[str, float]:
        return {t: float(v[:epoch].mean()) for t, v in self.values.items() if len(v) >= epoch}

    def best(self, trial: str, epoch: int) -> float | None:
        v = self.values.get(trial)
        return None if v is None or not len(v) else float(v[:epoch].min())

    def latest(self, trials: Mapping[str, int], every: int) -> dict[str, tuple[int, float]]:
        out = {}
        for t, last in trials.items():
            epoch = (min(last, len(self.values.get(t, ()))) // every) * every
            if epoch > 0:
                out[t] = (epoch, float(self.values[t][epoch - 1]))
        return out
