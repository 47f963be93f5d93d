"""A job's estimated work (service.budgets.run_work), stored at submission: jobs at most
DELTAFLOW_GROUP_WORK are tiny and share one message and one lease period
(service.dispatch.pack, worker.groups), so the estimate must not call a slow job tiny.
"""

from __future__ import annotations

from service import budgets
from service.config import Limits, Settings
from service.validation import validate_spec
from tests.support.jobs import validated


def spec(n_samples: int, epochs: int, batch_size: int | None = None) -> dict:
    training: dict = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": epochs}
    if batch_size is not None:
        training["batch_size"] = batch_size
    return validated(
        {
            "network": {
                "layers": [{"units": 1, "activation": "tanh"}],
                "output": {"activation": "softmax"},
                "loss": "cross_entropy",
            },
            "dataset": {"generator": "moons", "n_samples": n_samples, "seed": 0},
            "training": training,
        }
    )


def work(body: dict) -> int:
    return validate_spec(None, "tenant", body, Limits()).work  # a generator: no session


def test_a_full_batch_job_costs_its_epochs_passes_and_fixed_costs():
    sizes, n_train, epochs = [2, 1, 2], 200, 10
    expected = epochs * (budgets.backprop_work(sizes, n_train, "trace") + 100_000)
    assert work(spec(200, epochs)) == expected
    assert work(spec(200, epochs, batch_size=n_train)) == expected  # one step an epoch


def test_every_optimizer_step_costs_its_fixed_cost():
    """Same rows, same epochs: one-row mini-batches take ``n_train`` steps an epoch, each
    with Python and numpy calls (a 2-1-2 network on 20,000 rows: 4 epochs of one-row
    steps train for about 8 s on one core, not milliseconds)."""
    full = work(spec(20_000, 4))
    assert full <= Settings().group_work  # its arithmetic alone looks tiny
    assert work(spec(20_000, 4, batch_size=1000)) > full
    one_row = work(spec(20_000, 4, batch_size=1))
    assert one_row > work(spec(20_000, 4, batch_size=1000))
    assert one_row > 100 * Settings().group_work
