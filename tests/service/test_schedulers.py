"""Every scheduler's decisions on synthetic curves, in memory (``MemoryCurves``): the same
pure code the runs call through ``service.schedulers.reports``."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from service.schedulers import SCHEDULERS
from service.schedulers.asha import rungs
from service.schedulers.base import MemoryCurves, Report, Sweep, Trial
from service.schedulers.hyperband import bracket_of, bracket_rungs, highest_bracket
from service.schedulers.pbt import explorable, explore

ASHA = {"name": "asha", "metric": "val_loss", "mode": "min", "min_epochs": 2,
        "reduction_factor": 3}  # fmt: skip


def trials(n, **kwargs):
    return [Trial(f"t{i}", i, **kwargs) for i in range(n)]


def decide(name, config, me, epoch, pool, curves, sweep=None, generation=0):
    scheduler = SCHEDULERS[name]
    report = Report(pool[me], epoch, generation)
    return scheduler.decide(config, report, Sweep(pool, curves, sweep or {}))


# --- ASHA ------------------------------------------------------------------------------


def test_asha_reports_at_its_rungs_only():
    due = [e for e in range(1, 60) if SCHEDULERS["asha"].due(ASHA, 0, e)]
    assert due == rungs(ASHA, 60) == [2, 6, 18, 54]


def test_asha_keeps_the_best_third_of_those_at_the_rung():
    pool = trials(6)
    # Values at rung 2: t0 .. t5 = 0.6, 0.5, ..., 0.1 (t5 best); all six reached it.
    curves = MemoryCurves({t.id: [1.0, 0.6 - 0.1 * t.index] for t in pool})
    actions = [decide("asha", ASHA, i, 2, pool, curves).action for i in range(6)]
    assert actions == ["stop"] * 4 + ["continue"] * 2  # best 6 // 3 = 2 go on
    stopped = decide("asha", ASHA, 0, 2, pool, curves)
    assert stopped.detail == {"epoch": 2, "value": pytest.approx(0.6), "rank": 6, "of": 6}


def test_asha_lets_the_first_trials_at_a_rung_go_on():
    pool = trials(6)
    curves = MemoryCurves({"t0": [1.0, 0.9], "t1": [1.0, 0.1]})
    assert decide("asha", ASHA, 0, 2, pool, curves).action == "continue"  # 2 < η


def test_asha_in_max_mode_keeps_the_highest():
    config = {**ASHA, "mode": "max", "reduction_factor": 2}
    pool = trials(4)
    accuracy = [0.2, 0.8, 0.4, 0.6]
    curves = MemoryCurves({t.id: [-accuracy[t.index]] * 2 for t in pool})  # signed
    actions = [decide("asha", config, i, 2, pool, curves).action for i in range(4)]
    assert actions == ["stop", "continue", "stop", "continue"]
    assert decide("asha", config, 0, 2, pool, curves).detail["value"] == pytest.approx(0.2)


# --- Hyperband --------------------------------------------------------------------------

HYPERBAND = {"name": "hyperband", "metric": "val_loss", "mode": "min", "min_epochs": 1,
             "max_epochs": 27, "reduction_factor": 3, "seed": 7}  # fmt: skip


def test_hyperband_brackets_halve_from_different_rungs():
    assert highest_bracket(1, 27, 3) == 3
    assert [bracket_rungs(HYPERBAND, s) for s in range(4)] == [[], [9], [3, 9], [1, 3, 9]]


def test_hyperband_deals_trials_to_brackets_in_hyperbands_shares_by_seed():
    # One iteration: n_s = ceil(4 / (s + 1) * 3**s) = 4, 6, 12, 27 trials for s = 0..3.
    deck = [bracket_of(HYPERBAND, i) for i in range(49)]
    assert Counter(deck) == {0: 4, 1: 6, 2: 12, 3: 27}
    assert [bracket_of(HYPERBAND, i + 49) for i in range(49)] == deck  # it repeats
    assert deck == [bracket_of(dict(HYPERBAND), i) for i in range(49)]  # deterministic
    other = [bracket_of({**HYPERBAND, "seed": 8}, i) for i in range(49)]
    assert other != deck
    assert Counter(other) == Counter(deck)


def test_hyperband_halves_within_a_bracket_only():
    pool = trials(49)
    bracket = {t.id: bracket_of(HYPERBAND, t.index) for t in pool}
    boldest = [t for t in pool if bracket[t.id] == 3]
    safest = [t for t in pool if bracket[t.id] == 0]
    # Every trial is worse than the boldest bracket's: the safe bracket has no rung at all.
    curves = MemoryCurves({t.id: [0.1 * (t.index + 1)] * 9 for t in pool})
    me = boldest[-1]
    assert SCHEDULERS["hyperband"].due(HYPERBAND, me.index, 1)
    assert not any(SCHEDULERS["hyperband"].due(HYPERBAND, t.index, e)
                   for t in safest for e in range(1, 28))  # fmt: skip
    decision = decide("hyperband", HYPERBAND, me.index, 1, pool, curves)
    assert decision.action == "stop"
    assert decision.detail["of"] == len(boldest)
    assert decision.detail["bracket"] == 3
    assert decide("hyperband", HYPERBAND, boldest[0].index, 1, pool, curves).action == "continue"


# --- median -----------------------------------------------------------------------------

MEDIAN = {"name": "median", "metric": "val_loss", "mode": "min", "grace_epochs": 3,
          "min_trials": 2, "interval_epochs": 2}  # fmt: skip


def test_median_reports_every_interval_after_the_grace_period():
    assert [e for e in range(1, 10) if SCHEDULERS["median"].due(MEDIAN, 0, e)] == [3, 5, 7, 9]


def test_median_stops_a_best_so_far_worse_than_the_others_median_running_average():
    pool = trials(4)
    curves = MemoryCurves({
        "t0": [1.0, 0.5, 0.3],  # running mean at 3: 0.6
        "t1": [0.8, 0.6, 0.4],  # 0.6
        "t2": [0.9, 0.9, 0.9],  # 0.9
        "t3": [1.2, 0.7, 0.65],  # best 0.65, others' median (0.6, 0.6, 0.9) = 0.6
    })  # fmt: skip
    decision = decide("median", MEDIAN, 3, 3, pool, curves)
    assert decision.action == "stop"
    assert decision.detail == {"epoch": 3, "value": 0.65, "median": pytest.approx(0.6), "of": 3}
    # t2's best 0.9 is worse too; t0's 0.3 and t1's 0.4 are not.
    assert [decide("median", MEDIAN, i, 3, pool, curves).action for i in range(3)] == [
        "continue", "continue", "stop",
    ]  # fmt: skip


def test_median_waits_for_min_trials_at_that_epoch():
    pool = trials(3)
    curves = MemoryCurves({"t0": [0.1, 0.1, 0.1], "t1": [0.1, 0.1], "t2": [1.0, 1.0, 1.0]})
    assert decide("median", MEDIAN, 2, 3, pool, curves).action == "continue"  # one other


# --- PBT --------------------------------------------------------------------------------

PBT = {"name": "pbt", "metric": "val_loss", "mode": "min", "interval_epochs": 5,
       "quantile": 0.25, "resample_probability": 0.0, "perturbation_factors": [0.8, 1.2],
       "seed": 1}  # fmt: skip
SWEEP = {"kind": "random", "random": {
    "training.optimizer.learning_rate": {"loguniform": [1e-3, 1e-1]},
    "training.batch_size": {"randint": [8, 64]},
    "network.layers.0.units": {"randint": [2, 16]},
}}  # fmt: skip


def population(n, epoch=10):
    return [
        Trial(f"t{i}", i, epoch=epoch, checkpoint=epoch,
              params={"training.optimizer.learning_rate": 0.01 * (i + 1),
                      "training.batch_size": 32, "network.layers.0.units": 4})
        for i in range(n)
    ]  # fmt: skip


def test_pbt_bottom_quantile_exploits_the_top_and_explores():
    pool = population(8)
    curves = MemoryCurves({t.id: [1.0] * 9 + [0.1 * (t.index + 1)] for t in pool})
    actions = [decide("pbt", PBT, i, 10, pool, curves, SWEEP).action for i in range(8)]
    assert actions == ["continue"] * 6 + ["exploit"] * 2  # k = ceil(8 / 4) = 2
    decision = decide("pbt", PBT, 7, 10, pool, curves, SWEEP)
    assert decision.parent in {"t0", "t1"}
    parent = pool[int(decision.parent[1:])].params
    lr = decision.perturbed["training.optimizer.learning_rate"]
    assert lr / parent["training.optimizer.learning_rate"] in (
        pytest.approx(0.8),
        pytest.approx(1.2),
    )
    assert decision.perturbed["training.batch_size"] in (26, 38)  # 32 x 0.8 or 1.2, rounded
    assert "network.layers.0.units" not in decision.perturbed  # structure comes from the parent
    again = decide("pbt", PBT, 7, 10, pool, curves, SWEEP)
    assert (again.parent, again.perturbed) == (decision.parent, decision.perturbed)
    other = decide("pbt", PBT, 7, 10, pool, curves, SWEEP, generation=1)
    assert other.action == "exploit"  # another draw for another generation, same rule


def test_pbt_needs_a_donor_with_a_checkpoint_and_a_population():
    pool = [Trial(t.id, t.index, epoch=10, checkpoint=None, params=t.params)
            for t in population(4)]  # fmt: skip
    curves = MemoryCurves({t.id: [0.1 * (t.index + 1)] * 10 for t in pool})
    assert decide("pbt", PBT, 3, 10, pool, curves, SWEEP).action == "continue"
    alone = population(1)
    assert decide("pbt", PBT, 0, 10, alone, MemoryCurves({"t0": [1.0] * 10}), SWEEP).action == (
        "continue"
    )


def test_pbt_ranks_by_each_trials_latest_report():
    pool = population(4, epoch=12)  # all at epoch 12: their latest report is epoch 10
    values = {"t0": 0.1, "t1": 0.2, "t2": 0.3, "t3": 0.4}
    curves = MemoryCurves({t: [1.0] * 9 + [v, 0.0, 0.0] for t, v in values.items()})
    assert decide("pbt", PBT, 3, 10, pool, curves, SWEEP).detail["of"] == 4


def test_explore_resamples_clips_and_moves_along_a_grid():
    rng = np.random.default_rng(0)
    domains = {"training.optimizer.learning_rate": {"loguniform": [1e-3, 1e-1]}}
    always = {**PBT, "resample_probability": 1.0}
    draws = [explore({"training.optimizer.learning_rate": 0.05}, domains, always, rng)
             for _ in range(50)]  # fmt: skip
    values = [d["training.optimizer.learning_rate"] for d in draws]
    assert all(1e-3 <= v <= 1e-1 for v in values)
    assert len(set(values)) == 50
    clipped = explore({"training.optimizer.learning_rate": 0.09}, domains,
                      {**PBT, "perturbation_factors": [2.0]}, rng)  # fmt: skip
    assert clipped == {"training.optimizer.learning_rate": 0.1}
    grid = {"kind": "grid", "grid": {"training.l2": [0.0, 0.01, 0.1]}}
    moved = explore({"training.l2": 0.01}, explorable(grid, {"training.l2": 0.01}), PBT, rng)
    assert moved["training.l2"] in (0.0, 0.1)


def test_explorable_values_are_training_numbers_but_the_seed_and_epochs():
    params = {"training.optimizer.learning_rate": 0.1, "training.seed": 3, "training.epochs": 9,
              "training.optimizer.name": "adam", "network.layers.0.units": 4}  # fmt: skip
    assert explorable({}, params) == {"training.optimizer.learning_rate": None}
    assert math.isclose(explore(params, {"training.optimizer.learning_rate": None},
                                {**PBT, "perturbation_factors": [0.5]},
                                np.random.default_rng(0))["training.optimizer.learning_rate"],
                        0.05)  # fmt: skip
