"""Sweeps: which search or scheduler finds a good model sooner, with the same epochs.

Three objectives, five seeds each, the same budget of epochs for every method
(``TRIALS`` trials x ``EPOCHS`` epochs, what random search spends):

- ``spirals``: classification, 3-class spirals (300 samples), a tanh layer, Adam, full
  batch; the space is the learning rate (loguniform 1e-4..1) and the width (2..64).
- ``sine``: regression on the sine generator (300 samples), the same space plus l2.
- ``noisy-moons``: 150 noisy two-moons samples, 30 for validation, SGD on mini-batches of
  16: a noisy validation loss; learning rate, width and momentum.

Methods: random search; ASHA (first rung at 3 epochs, and at 9), Hyperband (brackets from
1 epoch) and median stopping (grace 9, every 3 epochs) over the same random draws
(their trials stop early, so the budget pays for more draws); PBT (a population of
``TRIALS``, every 9 epochs the bottom quarter exploits the top); our TPE (``service.tpe``,
one trial at a time) and Optuna's TPE (``TPESampler``) with the same trials and startup.

This is the service's own decision code driven **in process** with the real engine, not
through HTTP: ``service.sweeps.expand_random`` makes the random draws, ``service.build``
builds each run, ``service.schedulers`` (``MemoryCurves``) decides at every report, PBT
copies ``Trainer.state_bytes`` into ``adopt_state_bytes`` with ``reports.explored_spec``,
``service.tpe.suggest`` draws TPE's trials. Asynchronous methods run ``WORKERS`` trials
side by side, one epoch each in turn.

Printed per objective: the best validation loss reached (median over seeds, and the
seeds' spread), and the share of random search's epochs each method needed to reach
random search's best (median over seeds; "—" if it never did).

    nice -n 10 .venv/bin/python benchmarks/sweeps.py [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.build import prepare  # noqa: E402
from service.generators import generate  # noqa: E402
from service.schedulers import SCHEDULERS  # noqa: E402
from service.schedulers.base import MemoryCurves, Report, Sweep, Trial  # noqa: E402
from service.schedulers.reports import explored_spec  # noqa: E402
from service.sweeps import apply_params, expand_random  # noqa: E402
from service.tpe import suggest  # noqa: E402
from worker.nn import NonFiniteError  # noqa: E402

TRIALS = 24
EPOCHS = 81
WORKERS = 4
STARTUP = 8  # random trials before TPE (ours and Optuna's) takes over

ADAM = {"name": "adam", "learning_rate": 0.01}
OBJECTIVES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "spirals": (
        {
            "network": {"layers": [{"units": 8, "activation": "tanh"}],
                        "output": {"activation": "softmax"}, "loss": "cross_entropy"},
            "dataset": {"generator": "spirals", "n_samples": 300, "noise": 0.2, "seed": 0,
                        "n_classes": 3, "validation_split": 0.25, "standardize": True},
            "training": {"optimizer": ADAM, "epochs": EPOCHS},
        },
        {"training.optimizer.learning_rate": {"loguniform": [1e-4, 1.0]},
         "network.layers.0.units": {"randint": [2, 64]}},
    ),
    "sine": (
        {
            "network": {"layers": [{"units": 8, "activation": "tanh"}],
                        "output": {"activation": "identity"}, "loss": "mse"},
            "dataset": {"generator": "sine", "n_samples": 300, "noise": 0.1, "seed": 0,
                        "validation_split": 0.25, "standardize": True},
            "training": {"optimizer": ADAM, "epochs": EPOCHS},
        },
        {"training.optimizer.learning_rate": {"loguniform": [1e-4, 1.0]},
         "network.layers.0.units": {"randint": [2, 64]},
         "training.l2": {"uniform": [0.0, 0.05]}},
    ),
    "noisy-moons": (
        {
            "network": {"layers": [{"units": 8, "activation": "tanh"}],
                        "output": {"activation": "softmax"}, "loss": "cross_entropy"},
            "dataset": {"generator": "moons", "n_samples": 150, "noise": 0.35, "seed": 0,
                        "validation_split": 0.2, "standardize": True},
            "training": {"optimizer": {"name": "momentum", "learning_rate": 0.01},
                         "epochs": EPOCHS, "batch_size": 16},
        },
        {"training.optimizer.learning_rate": {"loguniform": [1e-4, 1.0]},
         "network.layers.0.units": {"randint": [2, 64]},
         "training.optimizer.momentum": {"uniform": [0.0, 0.95]}},
    ),
}  # fmt: skip

SCHEDULER_CONFIGS = {
    "asha": {"name": "asha", "metric": "val_loss", "mode": "min", "min_epochs": 3,
             "reduction_factor": 3},
    "asha-9": {"name": "asha", "metric": "val_loss", "mode": "min", "min_epochs": 9,
               "reduction_factor": 3},
    "hyperband": {"name": "hyperband", "metric": "val_loss", "mode": "min", "min_epochs": 1,
                  "max_epochs": 81, "reduction_factor": 3, "seed": 0},
    "median": {"name": "median", "metric": "val_loss", "mode": "min", "grace_epochs": 9,
               "min_trials": 3, "interval_epochs": 3},
    "pbt": {"name": "pbt", "metric": "val_loss", "mode": "min", "interval_epochs": 9,
            "quantile": 0.25, "resample_probability": 0.25, "perturbation_factors": [0.8, 1.2],
            "seed": 0},
}  # fmt: skip


@dataclass
class Ledger:
    """Epochs spent and the best validation loss seen so far, epoch by epoch."""

    budget: int
    spent: int = 0
    best: float = math.inf
    history: list[tuple[int, float]] = field(default_factory=list)

    def record(self, value: float) -> None:
        self.spent += 1
        if value < self.best:
            self.best = value
            self.history.append((self.spent, value))

    @property
    def done(self) -> bool:
        return self.spent >= self.budget

    def best_by(self, spent: int) -> float:
        """The best value seen within the first ``spent`` epochs."""
        return min((best for at, best in self.history if at <= spent), default=math.inf)

    def reached(self, target: float) -> int | None:
        """Epochs spent when the best first got to ``target`` (None: never)."""
        return next((spent for spent, best in self.history if best <= target * (1 + 1e-9)), None)


class Run:
    """One trial: its spec, its trainer stepped epoch by epoch, its validation curve."""

    def __init__(self, name: str, index: int, spec: dict, data: Any, blob: bytes | None = None):
        self.name, self.index, self.spec = name, index, spec
        self.trainer = prepare(spec, data).trainer
        if blob is not None:
            self.trainer.adopt_state_bytes(blob)
        self.steps: Iterator[Any] = self.trainer.epochs()
        self.curve: list[float] = []
        self.finished = False

    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    def step(self) -> float:
        try:
            stats = next(self.steps)
        except (StopIteration, NonFiniteError):
            self.finished = True
            value = math.inf
        else:
            value = stats.val_loss if stats.val_loss is not None else math.inf
            self.finished = self.trainer.stop_reason is not None
        self.curve.append(value)
        return value


class Objective:
    def __init__(self, name: str) -> None:
        self.name = name
        base, self.space = OBJECTIVES[name]
        self.base = apply_params(base, {"training.epochs": EPOCHS}, "base")
        self.data = generate(self.base["dataset"])

    def draws(self, seed: int, count: int) -> list[tuple[dict, dict]]:
        """(spec, params) of random search's draws, each trial with its own training seed."""
        drawn = expand_random(self.base, self.space, count, seed, count)
        return [
            (apply_params(e.spec, {"training.seed": i}, "random"), e.params)
            for i, e in enumerate(drawn)
        ]


def budget() -> int:
    return TRIALS * EPOCHS


def run_random(objective: Objective, seed: int) -> Ledger:
    ledger = Ledger(budget())
    for i, (spec, _) in enumerate(objective.draws(seed, TRIALS)):
        run = Run(f"t{i}", i, spec, objective.data)
        while not run.finished and not ledger.done:
            ledger.record(run.step())
    return ledger


def run_scheduled(objective: Objective, seed: int, name: str) -> Ledger:
    """Asynchronous: WORKERS trials at a time from the random draws; a stop frees a slot."""
    config = {**SCHEDULER_CONFIGS[name], "seed": seed}
    scheduler = SCHEDULERS[config["name"]]
    if name == "hyperband":
        config["max_epochs"] = EPOCHS
    ledger, draws = Ledger(budget()), iter(enumerate(objective.draws(seed, 40 * TRIALS)))
    runs: dict[str, Run] = {}
    active: list[Run] = []
    while not ledger.done:
        while len(active) < WORKERS:
            i, (spec, _) = next(draws)
            runs[f"t{i}"] = run = Run(f"t{i}", i, spec, objective.data)
            active.append(run)
        for run in list(active):
            ledger.record(run.step())
            if run.finished:
                active.remove(run)
            elif scheduler.due(config, run.index, run.epoch):
                trials = [Trial(r.name, r.index, r.epoch, live=r in active) for r in runs.values()]
                curves = MemoryCurves({r.name: r.curve for r in runs.values()})
                report = Report(Trial(run.name, run.index, run.epoch), run.epoch)
                if scheduler.decide(config, report, Sweep(trials, curves)).action == "stop":
                    active.remove(run)
            if ledger.done:
                break
    return ledger


def run_pbt(objective: Objective, seed: int) -> Ledger:
    """A population of TRIALS side by side; checkpoints at every report."""
    scheduler, config = SCHEDULERS["pbt"], SCHEDULER_CONFIGS["pbt"]
    sweep = {"kind": "random", "random": objective.space}
    config = {**config, "seed": seed}
    ledger = Ledger(budget())
    runs = [Run(f"t{i}", i, spec, objective.data)
            for i, (spec, _) in enumerate(objective.draws(seed, TRIALS))]  # fmt: skip
    params = {r.name: dict(objective.draws(seed, TRIALS)[r.index][1]) for r in runs}
    saved: dict[str, tuple[int, bytes]] = {}
    generation = dict.fromkeys(params, 0)
    while not ledger.done and not all(r.finished for r in runs):
        for k, run in enumerate(runs):
            if run.finished or ledger.done:
                continue
            ledger.record(run.step())
            if run.finished or not scheduler.due(config, run.index, run.epoch):
                continue
            saved[run.name] = (run.epoch, run.trainer.state_bytes())
            trials = [
                Trial(r.name, r.index, r.epoch, live=not r.finished,
                      checkpoint=saved.get(r.name, (None,))[0], params=params[r.name])
                for r in runs
            ]  # fmt: skip
            curves = MemoryCurves({r.name: r.curve for r in runs})
            report = Report(trials[k], run.epoch, generation[run.name])
            decision = scheduler.decide(config, report, Sweep(trials, curves, sweep))
            if decision.action != "exploit" or decision.parent is None:
                continue
            parent = next(r for r in runs if r.name == decision.parent)
            epoch, blob = saved[parent.name]
            spec, perturbed = explored_spec(parent.spec, decision.perturbed)
            child = Run(run.name, run.index, spec, objective.data, blob)
            # The curve goes on from the copied epoch (as curve_store.continue_from does).
            own = run.curve[:epoch]
            child.curve = own + parent.curve[len(own) : epoch]
            params[run.name] = {**params[parent.name], **perturbed}
            saved[run.name] = (epoch, blob)  # its checkpoint now: the copied one
            generation[run.name] += 1
            runs[k] = child
    return ledger


def run_tpe(objective: Objective, seed: int) -> Ledger:
    ledger = Ledger(budget())
    observed: list[tuple[dict, float]] = []
    for n in range(TRIALS):
        params = suggest(objective.space, observed, [], np.random.default_rng([seed, n]),
                         startup=STARTUP)  # fmt: skip
        spec = apply_params(objective.base, {**params, "training.seed": n}, "search")
        run = Run(f"t{n}", n, spec, objective.data)
        while not run.finished and not ledger.done:
            ledger.record(run.step())
        observed.append((params, min(run.curve, default=math.inf)))
    return ledger


def run_optuna(objective: Objective, seed: int) -> Ledger:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = Ledger(budget())

    def trial_params(trial: Any) -> dict[str, Any]:
        params = {}
        for path, dist in objective.space.items():
            kind, (low, high) = next(iter(dist.items()))
            if kind == "loguniform":
                params[path] = trial.suggest_float(path, low, high, log=True)
            elif kind == "randint":
                params[path] = trial.suggest_int(path, low, high)
            else:
                params[path] = trial.suggest_float(path, low, high)
        return params

    def train(trial: Any) -> float:
        params = trial_params(trial)
        spec = apply_params(objective.base, {**params, "training.seed": trial.number}, "search")
        run = Run(f"t{trial.number}", trial.number, spec, objective.data)
        while not run.finished and not ledger.done:
            ledger.record(run.step())
        return min(run.curve, default=math.inf)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    study.optimize(train, n_trials=TRIALS)
    return ledger


METHODS: dict[str, Callable[[Objective, int], Ledger]] = {
    "random": run_random,
    "asha": lambda o, s: run_scheduled(o, s, "asha"),
    "asha (first rung 9)": lambda o, s: run_scheduled(o, s, "asha-9"),
    "hyperband": lambda o, s: run_scheduled(o, s, "hyperband"),
    "median": lambda o, s: run_scheduled(o, s, "median"),
    "pbt": run_pbt,
    "tpe": run_tpe,
    "optuna-tpe": run_optuna,
}


def spread(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "—"
    low, high = min(finite), max(finite)
    return f"{statistics.median(finite):.4f} [{low:.4f}–{high:.4f}]"


def main() -> None:
    global TRIALS, EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="8 trials of 27 epochs, 2 seeds")
    args = parser.parse_args()
    seeds = list(range(args.seeds if not args.quick else 2))
    if args.quick:
        TRIALS, EPOCHS = 8, 27
    started = time.perf_counter()
    print(f"budget: {TRIALS} trials x {EPOCHS} epochs = {budget()} epochs per run; "
          f"{len(seeds)} seeds; {WORKERS} side by side for asha/hyperband/median")  # fmt: skip
    for name in OBJECTIVES:
        objective = Objective(name)
        results = {method: [run(objective, seed) for seed in seeds]
                   for method, run in METHODS.items()}  # fmt: skip
        print(f"\n### {name}\n")
        print("| method | best val loss, median [min–max] over seeds | best within a third "
              "of the budget | seeds reaching random's best | ... within a third of the "
              "budget | epochs to reach it (share of the budget), median |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        targets = [ledger.best for ledger in results["random"]]
        third = budget() // 3
        for method, ledgers in results.items():
            reached = [ledger.reached(t) for ledger, t in zip(ledgers, targets, strict=True)]
            got = [r for r in reached if r is not None]
            early = [r for r in got if r <= third]
            share = f"{statistics.median(got) / budget():.2f}" if got else "—"
            print(f"| {method} | {spread([ledger.best for ledger in ledgers])} | "
                  f"{spread([ledger.best_by(third) for ledger in ledgers])} | "
                  f"{len(got)}/{len(seeds)} | {len(early)}/{len(seeds)} | {share} |")  # fmt: skip
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
