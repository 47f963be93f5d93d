"""Compute and memory budgets, checked before anything is allocated (issue 11).

One home for the estimates that refuse a request up front: the synchronous backprop
endpoints (layers, units and a work budget), prediction (rows, outputs and work) and a
job's peak memory on its worker. Each over-limit answer is 413 naming the limit's
``DELTAFLOW_MAX_*`` variable. Pure functions over sizes; no Flask, no database.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.config import Limits, limit_env
from service.problems import Invalid, Loc, PayloadTooLarge
from service.schemas.spec import parameter_count

# Arrays a training step keeps per unit of a batch row: z, a, δ and the activation's
# derivative (float64 or float32 each); the data (X, one-hot Y, the split copies)
# counts three times; the parameters four (weights, gradients, two optimizer moments).
ACTIVATION_ARRAYS = 4
DATA_COPIES = 3
PARAMETER_COPIES = 4


def over(limit: str, value: int, maximum: int, loc: Loc, what: str) -> PayloadTooLarge:
    """A 413 naming the limit: ``what`` is e.g. "work (parameters² × examples)"."""
    detail = f"{what} is {value}; at most {maximum} ({limit_env(limit)})"
    return PayloadTooLarge(detail, errors=[(loc, detail)])


def check_layers(sizes: Sequence[int], limits: Limits, loc: Loc) -> None:
    """The hidden layers of ``sizes`` ([n_in, h1, ..., K]) against ``layers`` and ``units``."""
    hidden = list(sizes[1:-1])
    if len(hidden) > limits.layers:
        raise Invalid.at(
            [*loc, "layers"], f"at most {limits.layers} hidden layers ({limit_env('layers')})"
        )
    for i, units in enumerate(hidden):
        if units > limits.units:
            raise Invalid.at(
                [*loc, "layers", i, "units"], f"at most {limits.units} units ({limit_env('units')})"
            )


def backprop_work(sizes: Sequence[int], m: int, kind: str) -> int:
    """Multiply-adds of one request: a trace is a forward and a backward pass (parameters ×
    examples × 2, plus one per layer and example); a gradient check runs two forward passes
    per parameter (parameters² × examples × 2)."""
    n_parameters = parameter_count(list(sizes))
    depth = len(sizes) - 1
    one_pass = m * (n_parameters + depth)
    if kind == "gradcheck":
        return 2 * n_parameters * one_pass
    return 2 * one_pass


# An epoch's fixed cost (Python and numpy calls around the arithmetic), as multiply-adds:
# about what a tiny network's epoch takes beyond its arithmetic here.
EPOCH_OVERHEAD_WORK = 100_000
# Each further optimizer step of an epoch (mini-batches): about half an epoch's fixed cost
# (a 2-8-3 network on 96 rows: ~0.4 ms an epoch in one batch, ~0.2 ms more per one-row
# step). Without it a job of one-row steps on many rows looked tiny and trained for
# seconds — longer than a group's lease allows (worker.groups).
STEP_OVERHEAD_WORK = 50_000


def run_work(
    sizes: Sequence[int],
    n_train: int,
    epochs: int,
    gradient_check: bool,
    batch_size: int | None = None,
) -> int:
    """A training run's estimated work in multiply-adds: each epoch a forward and a backward
    pass over the training rows plus the epoch's fixed cost and its further mini-batch
    steps' (``batch_size`` None: one batch), and the gradient check's passes if asked.
    Stored on the job (``jobs.work``): jobs at most ``DELTAFLOW_GROUP_WORK`` are tiny and
    share their messages (``service.dispatch``)."""
    steps = -(-n_train // batch_size) if batch_size else 1
    extra_steps = max(steps - 1, 0) * STEP_OVERHEAD_WORK
    work = epochs * (backprop_work(sizes, n_train, "trace") + EPOCH_OVERHEAD_WORK + extra_steps)
    if gradient_check:
        work += backprop_work(sizes, n_train, "gradcheck")
    return work


def check_backprop(sizes: Sequence[int], m: int, kind: str, limits: Limits) -> None:
    limit = f"{kind}_work"
    work = backprop_work(sizes, m, kind)
    if work > getattr(limits, limit):
        raise over(limit, work, getattr(limits, limit), ["body"], "the work (multiply-adds)")


def check_predict(sizes: Sequence[int], rows: int, limits: Limits) -> None:
    """Rows, output values (rows × outputs) and work (rows × parameters) of a prediction."""
    loc = ["body", "X"]
    if rows > limits.predict_rows:
        raise over("predict_rows", rows, limits.predict_rows, loc, "the number of rows")
    outputs = rows * sizes[-1]
    if outputs > limits.predict_outputs:
        raise over("predict_outputs", outputs, limits.predict_outputs, loc, "rows × outputs")
    work = rows * parameter_count(list(sizes))
    if work > limits.predict_work:
        raise over("predict_work", work, limits.predict_work, loc, "rows × parameters")


def predict_chunk_rows(sizes: Sequence[int], limits: Limits) -> int:
    """Rows per forward pass so that a chunk's widest activation holds at most
    ``predict_chunk_values`` values."""
    return max(1, limits.predict_chunk_values // max(sizes))


def job_peak_bytes(
    sizes: Sequence[int], n_samples: int, batch_rows: int | None, itemsize: int
) -> int:
    """A training run's peak memory, estimated: the data (float64, a few copies), the
    activations of one batch (rows × every layer's units, a few arrays each) and the
    parameters with their gradients and optimizer state."""
    rows = min(batch_rows or n_samples, n_samples)
    data = DATA_COPIES * 8 * n_samples * (sizes[0] + sizes[-1])
    activations = ACTIVATION_ARRAYS * itemsize * rows * sum(sizes)
    parameters = PARAMETER_COPIES * itemsize * parameter_count(list(sizes))
    return data + activations + parameters


def check_job_memory(
    sizes: Sequence[int],
    n_samples: int,
    batch_rows: int | None,
    itemsize: int,
    limits: Limits,
    loc: Loc,
) -> int:
    """422 at ``loc`` (the training spec's batch_size) when the estimate is over
    ``job_memory_bytes``: a job is refused at submission (and in a batch, like any other
    invalid spec), never left to exhaust its worker."""
    peak = job_peak_bytes(sizes, n_samples, batch_rows, itemsize)
    if peak > limits.job_memory_bytes:
        rows = min(batch_rows or n_samples, n_samples)
        raise Invalid.at(
            loc,
            f"the job would need about {peak} bytes (a batch of {rows} rows × {sum(sizes)} "
            f"units, the data and the parameters); at most {limits.job_memory_bytes} "
            f"({limit_env('job_memory_bytes')}): a smaller batch_size or network fits",
        )
    return peak
