"""What recording costs: the engine's seconds per epoch with ``training.record`` off and on.

Same workloads, data and timing method as ``engine.py`` (one warm-up epoch, interleaved
repeats, median seconds per epoch), Deltaflow's engine only. Modes:

- ``off``: nothing recorded (the default of every job);
- ``activations``: ``record.activations`` (per-layer dead/saturated fractions, mean, std);
- ``grad_norms``: ``record.grad_norms`` (‖D‖ and update ratios), for comparison;
- ``both``.

Each "on" mode is printed as its ratio to ``off`` and as the extra microseconds per
epoch. All of the extra work happens once per epoch, on its last mini-batch, so it is
also timed alone: ``stats µs`` calls the activation statistics on that batch's buffers
many times, which a busy shared machine disturbs far less than whole epochs, and
``stats/epoch`` divides it by the median epoch with recording off.

    nice -n 10 .venv/bin/python benchmarks/recording.py [--quick] [--clock cpu]
    OPENBLAS_NUM_THREADS=1 ... (one BLAS thread: steadier on a shared machine)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from engine import (
    deltaflow_trainer,
    epoch_runner,
    interleaved_medians,
    load_average,
    print_footer,
    selected_workloads,
)

from worker.nn import Trainer
from worker.nn.recording import LastBatchRecorder

MODES: dict[str, dict[str, bool]] = {
    "off": {},
    "activations": {"activations": True},
    "grad_norms": {"grad_norms": True},
    "both": {"activations": True, "grad_norms": True},
}


def statistics_alone(trainer: Trainer, clock: Callable[[], float]) -> float:
    """Seconds per call of the activation statistics on the last mini-batch's buffers.

    Timed on a trainer that has run as many epochs as the measured ones: how much of a
    layer saturates, which decides how much counting there is, depends on that.
    """
    n, size = trainer.X_train.shape[0], trainer.batch_size
    last = n - (n - 1) // size * size  # the size of the epoch's last mini-batch
    net = trainer.net
    recorder = LastBatchRecorder(
        net,
        trainer.optimizer,
        [net.flat_parameters],
        [net.flat_gradients],
        grad_norms=False,
        activations=True,
    )
    started = clock()
    recorder.activation_stats(last)
    calls = max(20, int(0.2 / max(clock() - started, 1e-7)))
    samples = []
    for _ in range(5):
        started = clock()
        for _ in range(calls):
            recorder.activation_stats(last)
        samples.append((clock() - started) / calls)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--workloads", default="abc", help="subset of a, b, c")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    import engine

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    engine.CLOCK = clock
    repeats = args.repeats or (3 if args.quick else 7)
    modes = [m for m in args.modes.split(",") if m and m != "off"]
    modes.insert(0, "off")
    print(f"numpy {np.__version__} BLAS: {engine.blas_description()}")
    print(f"repeats={repeats} (median reported), clock={args.clock}")
    print(f"load average at start: {load_average()}\n")
    on = modes[1:]
    header = f"{'workload':<9}{'dtype':<9}" + "".join(f"{m + ' s/epoch':>22}" for m in modes)
    header += "".join(f"{m + '/off':>17}{'+µs/epoch':>12}" for m in on)
    header += f"{'stats µs':>11}{'stats/epoch':>13}"
    print(header)
    for workload, epochs, X, y in selected_workloads(args.workloads, args.quick):
        for dtype in args.dtypes.split(","):
            trainers = {m: deltaflow_trainer(workload, X, y, dtype, MODES[m]) for m in modes}
            runners = {m: epoch_runner(trainer) for m, trainer in trainers.items()}
            median = interleaved_medians(runners, epochs, repeats)
            alone = statistics_alone(trainers["off"], clock)
            row = f"({workload.key}){'':<6}{dtype:<9}" + "".join(
                f"{median[m]:>22.6f}" for m in modes
            )
            row += "".join(
                f"{median[m] / median['off']:>16.3f}×{(median[m] - median['off']) * 1e6:>12.1f}"
                for m in on
            )
            row += f"{alone * 1e6:>11.1f}{alone / median['off']:>12.2%}"
            print(row, flush=True)
    print_footer(args.workloads, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
