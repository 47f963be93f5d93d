"""What recording costs: seconds per epoch of the engine with ``training.record`` off and on.

Same workloads, data and timing method as ``engine.py`` (one warm-up epoch, interleaved
repeats, median seconds per epoch), Deltaflow's engine only. Modes:

- ``off``: nothing recorded (the default of every job);
- ``activations``: ``record.activations`` (per-layer dead/saturated fractions, mean, std);
- ``grad_norms``: ``record.grad_norms`` (‖D‖ and update ratios), for comparison;
- ``both``.

Each "on" mode is printed as its ratio to ``off`` and as the extra microseconds per epoch
(all of it is spent on the epoch's last mini-batch, so the cost per epoch is constant
while the epoch grows with the data).

    nice -n 10 .venv/bin/python benchmarks/recording.py [--quick] [--clock cpu --threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from engine import WORKLOADS, deltaflow_runner, load_average, make_data

MODES: dict[str, dict[str, bool]] = {
    "off": {},
    "activations": {"activations": True},
    "grad_norms": {"grad_norms": True},
    "both": {"activations": True, "grad_norms": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--workloads", default="abc", help="subset of a, b, c")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    import engine

    engine.CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads, user_api="blas")
    repeats = args.repeats or (3 if args.quick else 7)
    modes = [m for m in args.modes.split(",") if m]
    if modes[0] != "off":
        modes.insert(0, "off")
    print(f"BLAS: {engine.blas_description()}")
    print(f"repeats={repeats} (median reported), clock={args.clock}")
    print(f"load average at start: {load_average()}\n")
    on = modes[1:]
    header = f"{'workload':<9}{'dtype':<9}" + "".join(f"{m + ' s/epoch':>22}" for m in modes)
    header += "".join(f"{m + '/off':>17}{'+µs/epoch':>12}" for m in on)
    print(header)
    for workload in WORKLOADS:
        if workload.key not in args.workloads:
            continue
        epochs = workload.quick_epochs if args.quick else workload.epochs
        X, y = make_data(workload)
        for dtype in args.dtypes.split(","):
            runners = {m: deltaflow_runner(workload, X, y, dtype, MODES[m]) for m in modes}
            times: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(repeats):
                for mode, run in runners.items():
                    times[mode].append(run(epochs) / epochs)
            median = {m: statistics.median(v) for m, v in times.items()}
            row = f"({workload.key}){'':<6}{dtype:<9}" + "".join(
                f"{median[m]:>22.6f}" for m in modes
            )
            row += "".join(
                f"{median[m] / median['off']:>16.3f}×{(median[m] - median['off']) * 1e6:>12.1f}"
                for m in on
            )
            print(row, flush=True)
    print(f"\nload average at end: {load_average()}")
    for workload in WORKLOADS:
        if workload.key in args.workloads:
            epochs = workload.quick_epochs if args.quick else workload.epochs
            print(f"{workload.describe()}, {epochs} epochs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
