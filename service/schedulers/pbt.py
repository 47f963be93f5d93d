"""Population based training (Jaderberg et al., 2017), asynchronous.

Every ``interval_epochs`` a trial reports. The live trials (not finished) are ranked by
their value at their own latest multiple of the interval. A trial in the bottom
``k = min(ceil(n * quantile), n // 2)`` *exploits*: it takes the latest checkpoint (weights,
optimizer state, generator, epoch) and the spec of a trial drawn from the top ``k`` that has
one, and *explores*: each varied number under ``training.`` (``explorable``) is resampled
from the batch's distribution with ``resample_probability``, else multiplied by one of
``perturbation_factors`` (kept inside the distribution's range, rounded for integers); a
grid's values move to a neighbour in the list. Everything else (the network, the dataset,
the seed, names such as the optimizer's) comes from the parent with its weights.

Donor and perturbations are drawn from ``default_rng([seed, trial index, epoch,
generation])``: the same sweep state gives the same decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from service.schedulers.base import CONTINUE, Decision, Report, Scheduler, Sweep, sign
from service.sweeps import sampler

# Varied training values PBT never changes: they are not hyperparameters of the optimisation.
INHERITED = frozenset({"training.seed", "training.epochs"})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def explorable(sweep: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``{path: distribution or None}`` of the values an exploit may change."""
    space = sweep.get("random") or {}
    grid = sweep.get("grid") or {}
    domains: dict[str, Any] = {}
    for path, value in params.items():
        if not path.startswith("training.") or path in INHERITED or not _number(value):
            continue
        if path in space:
            domains[path] = space[path]
        elif path in grid:
            domains[path] = {"choice": grid[path]}
        else:
            domains[path] = None  # an explicit jobs list: perturbation only
    return domains


def explore(
    params: Mapping[str, Any],
    domains: Mapping[str, Any],
    config: Mapping[str, Any],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """New values for the explorable paths (see the module docstring)."""
    factors = [float(f) for f in config["perturbation_factors"]]
    resample = float(config["resample_probability"])
    out = {}
    for path, domain in domains.items():
        value = params[path]
        kind, args = next(iter(domain.items())) if domain else ("", [])
        if kind == "choice":
            options = list(args)
            if rng.random() < resample or value not in options:
                out[path] = options[int(rng.integers(len(options)))]
            else:
                step = -1 if rng.random() < 0.5 else 1
                out[path] = options[min(max(options.index(value) + step, 0), len(options) - 1)]
            continue
        if kind and rng.random() < resample:
            out[path] = sampler(path, domain, "random")(rng)
            continue
        new = value * factors[int(rng.integers(len(factors)))]
        if kind:
            new = min(max(new, args[0]), args[1])
        out[path] = round(new) if isinstance(value, int) or kind == "randint" else float(new)
    return out


class Pbt(Scheduler):
    name = "pbt"
    checkpoints_at_reports = True

    def due(self, config: Mapping[str, Any], index: int, epoch: int) -> bool:
        return epoch % int(config["interval_epochs"]) == 0

    def decide(self, config: Mapping[str, Any], report: Report, sweep: Sweep) -> Decision:
        me = report.trial.id
        live = {t.id: t for t in sweep.trials if t.live or t.id == me}
        epochs = {t.id: t.epoch for t in live.values()}
        epochs[me] = report.epoch
        scores = sweep.curves.latest(epochs, int(config["interval_epochs"]))
        n = len(scores)
        k = min(math.ceil(n * float(config["quantile"])), n // 2)
        if me not in scores or k < 1:
            return CONTINUE
        ranked = sorted(scores, key=lambda t: (scores[t][1], live[t].index))
        if ranked.index(me) < n - k:
            return CONTINUE
        donors = [t for t in ranked[:k] if t != me and live[t].checkpoint is not None]
        if not donors:
            return CONTINUE
        seed = int(config.get("seed") or 0)
        rng = np.random.default_rng([seed, report.trial.index, report.epoch, report.generation])
        parent = live[donors[int(rng.integers(len(donors)))]]
        perturbed = explore(parent.params, explorable(sweep.spec, parent.params), config, rng)
        s = sign(config["mode"])
        detail = {
            "epoch": report.epoch,
            "value": s * scores[me][1],
            "parent": parent.id,
            "parent_value": s * scores[parent.id][1],
            "rank": ranked.index(me) + 1,
            "of": n,
        }
        return Decision("exploit", detail, parent=parent.id, perturbed=perturbed)
