"""Deltaflow's engine against PyTorch CPU and scikit-learn, same network, data and epochs.

Workloads (issue 2):
  (a) 5000 × 400 → 25 sigmoid → 10 sigmoid (binary cross-entropy), full batch
  (b) 20000 × 784 → 256 relu → 128 relu → 10 softmax (cross-entropy), mini-batches of 128
  (c) 1000 × 2 → 8 tanh → 8 tanh → 2 softmax (cross-entropy), full batch

Every engine runs plain SGD (no momentum, no L2) with a per-epoch reshuffle for (b), in
float64 and float32. Each measurement trains for a fixed number of epochs after one
warm-up epoch; engines are interleaved and repeated, and the median seconds per epoch is
reported with the ratio to PyTorch. torch uses as many threads as numpy's BLAS.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.nn import Trainer, TrainingConfig, network_from_spec  # noqa: E402

# Wall time by default; ``--clock cpu`` switches to this process's CPU time, which a busy
# shared machine disturbs less (meaningful with --threads 1, where no thread spins idle).
CLOCK: Callable[[], float] = time.perf_counter


@dataclass(frozen=True)
class Workload:
    key: str
    n: int
    sizes: tuple[int, ...]
    hidden: str
    output: str
    loss: str
    batch_size: int | None
    epochs: int
    quick_epochs: int
    learning_rate: float

    def describe(self) -> str:
        inner = " → ".join(f"{s} {self.hidden}" for s in self.sizes[1:-1])
        batch = "full batch" if self.batch_size is None else f"batches of {self.batch_size}"
        shape = f"{self.n}×{self.sizes[0]} → {inner} → {self.sizes[-1]} {self.output}"
        return f"({self.key}) {shape}, {batch}"


WORKLOADS = [
    Workload(
        "a", 5000, (400, 25, 10), "sigmoid", "sigmoid", "binary_cross_entropy", None, 300, 60, 1.0
    ),
    Workload("b", 20000, (784, 256, 128, 10), "relu", "softmax", "cross_entropy", 128, 6, 2, 0.05),
    Workload("c", 1000, (2, 8, 8, 2), "tanh", "softmax", "cross_entropy", None, 4000, 1000, 0.5),
]


def make_data(workload: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal inputs labelled by a random linear teacher: float64 X, int labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((workload.n, workload.sizes[0]))
    teacher = rng.standard_normal((workload.sizes[0], workload.sizes[-1]))
    return X, np.argmax(X @ teacher, axis=1)


# --------------------------------------------------------------------------- engines


def deltaflow_trainer(
    workload: Workload,
    X: np.ndarray,
    y: np.ndarray,
    dtype: str,
    record: dict[str, bool] | None = None,
) -> Trainer:
    """The engine's trainer for a workload; ``record`` is the training spec's record block."""
    spec = {
        "layers": [{"units": u, "activation": workload.hidden} for u in workload.sizes[1:-1]],
        "output": {"activation": workload.output},
        "loss": workload.loss,
        "init": {"scheme": "glorot"},
    }
    Y = np.eye(workload.sizes[-1])[y]
    net = network_from_spec(spec, X.shape[1], Y.shape[1], rng=np.random.default_rng(0), dtype=dtype)
    training = {
        "optimizer": {"name": "sgd", "learning_rate": workload.learning_rate},
        "epochs": 10**9,
        "batch_size": workload.batch_size or workload.n,
        "seed": 0,
        "record": record or {},
    }
    return Trainer(net, X, Y, TrainingConfig.from_spec(training))


def deltaflow_runner(
    workload: Workload,
    X: np.ndarray,
    y: np.ndarray,
    dtype: str,
    record: dict[str, bool] | None = None,
) -> Callable[[int], float]:
    """``run(n_epochs) -> seconds`` after one warm-up epoch."""
    return epoch_runner(deltaflow_trainer(workload, X, y, dtype, record))


def epoch_runner(trainer: Trainer) -> Callable[[int], float]:
    """``run(n_epochs) -> seconds`` of an engine trainer, after one warm-up epoch."""
    epochs = trainer.epochs()
    next(epochs)  # warm-up: buffers are allocated on first use

    def run(n_epochs: int) -> float:
        started = CLOCK()
        for _ in range(n_epochs):
            stats = next(epochs)
        elapsed = CLOCK() - started
        assert np.isfinite(stats.train_loss)
        return elapsed

    return run


def torch_runner(
    workload: Workload, X: np.ndarray, y: np.ndarray, dtype: str
) -> Callable[[int], float]:
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(0)
    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    act = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[
        workload.hidden
    ]
    layers: list[torch.nn.Module] = []
    for n_in, n_out in zip(workload.sizes[:-2], workload.sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(n_in, n_out), act()]
    layers.append(torch.nn.Linear(workload.sizes[-2], workload.sizes[-1]))
    model = torch.nn.Sequential(*layers).to(torch_dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=workload.learning_rate)
    Xt = torch.from_numpy(X.astype(dtype))
    K = workload.sizes[-1]
    if workload.loss == "binary_cross_entropy":
        target = torch.from_numpy(np.eye(K)[y].astype(dtype))

        def loss_fn(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            # Ng's J: summed over K outputs, averaged over m (sigmoid fused into the loss).
            return F.binary_cross_entropy_with_logits(logits, t, reduction="sum") / logits.shape[0]
    else:
        target = torch.from_numpy(y.astype(np.int64))

        def loss_fn(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, t)

    n, batch = workload.n, workload.batch_size or workload.n
    generator = torch.Generator().manual_seed(0)

    def epoch() -> float:
        total = torch.zeros((), dtype=torch_dtype)
        if batch >= n:
            batches = [(Xt, target)]
        else:
            order = torch.randperm(n, generator=generator)
            batches = [(Xt[i], target[i]) for i in order.split(batch)]
        for xb, tb in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), tb)
            loss.backward()
            optimizer.step()
            total += loss.detach() * xb.shape[0]
        return float(total) / n

    epoch()

    def run(n_epochs: int) -> float:
        started = CLOCK()
        for _ in range(n_epochs):
            value = epoch()
        elapsed = CLOCK() - started
        assert np.isfinite(value)
        return elapsed

    return run


def sklearn_runner(
    workload: Workload, X: np.ndarray, y: np.ndarray, dtype: str
) -> Callable[[int], float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    hidden = {"sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}[workload.hidden]
    Xd = X.astype(dtype)

    def run(n_epochs: int) -> float:
        # sklearn's softmax output stands in for (a)'s 10 sigmoids: same shapes and work.
        model = MLPClassifier(
            hidden_layer_sizes=workload.sizes[1:-1],
            activation=hidden,
            solver="sgd",
            learning_rate_init=workload.learning_rate,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            batch_size=workload.batch_size or workload.n,
            max_iter=n_epochs,
            tol=0.0,
            n_iter_no_change=n_epochs + 1,
            shuffle=True,
            random_state=0,
        )
        started = CLOCK()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Xd, y)
        return CLOCK() - started

    return run


ENGINES: dict[str, Callable[[Workload, np.ndarray, np.ndarray, str], Callable[[int], float]]] = {
    "deltaflow": deltaflow_runner,
    "pytorch": torch_runner,
    "sklearn": sklearn_runner,
}


# --------------------------------------------------------------------------- main


def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    rows = [
        f"{info.get('internal_api')} {info.get('version')} kernel={info.get('architecture')} "
        f"threads={info.get('num_threads')}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return "; ".join(rows) or "no BLAS found"


def load_average() -> str:
    """The 1/5/15-minute load averages: other processes on the cores make numbers noisy."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def numpy_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return os.cpu_count() or 1
    counts = [info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"]
    return counts[0] if counts else 1


def interleaved_medians(
    runners: dict[str, Callable[[int], float]], epochs: int, repeats: int
) -> dict[str, float]:
    """Median seconds per epoch of each runner, the runners taking turns ``repeats`` times."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(run(epochs) / epochs)
    return {name: statistics.median(values) for name, values in times.items()}


def selected_workloads(
    keys: str, quick: bool
) -> Iterator[tuple[Workload, int, np.ndarray, np.ndarray]]:
    """(workload, epochs per measurement, X, y) for each workload named in ``keys``."""
    for workload in WORKLOADS:
        if workload.key in keys:
            epochs = workload.quick_epochs if quick else workload.epochs
            yield (workload, epochs, *make_data(workload))


def print_footer(keys: str, quick: bool) -> None:
    """The load average at the end and what each measured workload was."""
    print(f"\nload average at end: {load_average()}")
    for workload in WORKLOADS:
        if workload.key in keys:
            epochs = workload.quick_epochs if quick else workload.epochs
            print(f"{workload.describe()}, {epochs} epochs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--repeats", type=int, default=None, help="measurements per engine")
    parser.add_argument("--workloads", default="abc", help="subset of a, b, c")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--threads", type=int, default=None, help="BLAS and torch threads")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads, user_api="blas")
    repeats = args.repeats or (3 if args.quick else 5)
    engines = [e for e in args.engines.split(",") if e]

    import torch

    torch.set_num_threads(numpy_threads())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    print(f"numpy {np.__version__} BLAS: {blas_description()}")
    print(f"torch {torch.__version__} threads={torch.get_num_threads()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; it can slow numpy's BLAS")
    print(
        f"repeats={repeats} (median reported), clock={args.clock}{' --quick' if args.quick else ''}"
    )
    print(f"load average at start: {load_average()}\n")

    header = f"{'workload':<9}{'dtype':<9}" + "".join(f"{e + ' s/epoch':>19}" for e in engines)
    header += "".join(f"{e + '/torch':>16}" for e in engines if e != "pytorch")
    print(header)
    for workload, epochs, X, y in selected_workloads(args.workloads, args.quick):
        for dtype in args.dtypes.split(","):
            runners = {name: ENGINES[name](workload, X, y, dtype) for name in engines}
            median = interleaved_medians(runners, epochs, repeats)
            row = f"({workload.key}){'':<6}{dtype:<9}" + "".join(
                f"{median[e]:>19.6f}" for e in engines
            )
            if "pytorch" in median:
                row += "".join(
                    f"{median[e] / median['pytorch']:>15.2f}×" for e in engines if e != "pytorch"
                )
            print(row, flush=True)
    print_footer(args.workloads, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
