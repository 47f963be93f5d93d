"""Median stopping (Golovin et al., 2017, "Google Vizier", section 3.2.2).

At epoch ``s`` — every ``interval_epochs`` from ``grace_epochs`` on — a trial is stopped if
its **best** value so far is strictly worse than the **median of the running averages**
(the mean of each one's values over epochs 1..s) of the *other* trials that reached ``s``,
once at least ``min_trials`` of them did. Vizier compares against completed trials only;
here every other trial that reached ``s`` counts, finished or still running (as Ray Tune's
median stopping rule does), so a sweep whose trials run side by side is judged early.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from service.schedulers.base import (
    CONTINUE,
    Decision,
    Report,
    Scheduler,
    Sweep,
    sign,
)


class Median(Scheduler):
    name = "median"

    def due(self, config: Mapping[str, Any], index: int, epoch: int) -> bool:
        grace, every = int(config["grace_epochs"]), int(config["interval_epochs"])
        return epoch >= grace and (epoch - grace) % every == 0

    def decide(self, config: Mapping[str, Any], report: Report, sweep: Sweep) -> Decision:
        me = report.trial.id
        members = {t.id for t in sweep.trials}
        others = [
            v
            for t, v in sweep.curves.running_means(report.epoch).items()
            if t != me and t in members
        ]
        if len(others) < int(config["min_trials"]):
            return CONTINUE
        best = sweep.curves.best(me, report.epoch)
        median = statistics.median(others)
        if best is None or not best > median:
            return CONTINUE
        s = sign(config["mode"])
        return Decision(
            "stop",
            {"epoch": report.epoch, "value": s * best, "median": s * median, "of": len(others)},
        )
