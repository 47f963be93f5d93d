"""The TPE sampler (service.tpe): reproducible, inside its space, and better than random
search at finding a known optimum of a synthetic objective."""

from __future__ import annotations

import math

import numpy as np

from service import tpe

SPACE = {
    "lr": {"loguniform": [1e-4, 1.0]},
    "units": {"randint": [1, 64]},
    "act": {"choice": ["tanh", "relu", "sigmoid"]},
    "l2": {"uniform": [0.0, 1.0]},
}


def objective(p):
    """Minimum 0 at lr = 1e-2, units = 40, relu, l2 = 0.3."""
    return (
        (math.log10(p["lr"]) + 2) ** 2
        + ((p["units"] - 40) / 20) ** 2
        + (0.0 if p["act"] == "relu" else 0.5)
        + (p["l2"] - 0.3) ** 2
    )


def search(seed, n=60, startup=10):
    observed = []
    for i in range(n):
        params = tpe.suggest(SPACE, observed, [], np.random.default_rng([seed, i]), startup=startup)
        observed.append((params, objective(params)))
    return observed


def test_suggestions_are_reproducible_and_inside_the_space():
    first, again = search(3, n=25), search(3, n=25)
    assert first == again
    for params, _ in first:
        assert 1e-4 <= params["lr"] <= 1.0
        assert isinstance(params["units"], int)
        assert 1 <= params["units"] <= 64
        assert params["act"] in ("tanh", "relu", "sigmoid")
        assert 0.0 <= params["l2"] <= 1.0
    assert search(4, n=25) != first


def test_tpe_concentrates_on_the_optimum_better_than_random_search():
    seeds = range(12)
    tpe_runs = [search(s) for s in seeds]
    random_runs = [search(s, startup=10**9) for s in seeds]  # never leaves the startup phase

    def best(run):
        return min(v for _, v in run)

    def late(run):  # the last 20 trials: where the search is looking now
        return float(np.mean([v for _, v in run[-20:]]))

    assert np.median([best(r) for r in tpe_runs]) < np.median([best(r) for r in random_runs])
    assert np.mean([late(r) for r in tpe_runs]) < 0.5 * np.mean([late(r) for r in random_runs])
    # Half the late TPE trials are near the optimum's learning rate; random's are spread out.
    near = [abs(math.log10(p["lr"]) + 2) < 0.5 for r in tpe_runs for p, _ in r[-20:]]
    assert np.mean(near) > 0.5


def test_the_constant_liar_steers_away_from_pending_trials():
    rng_seed = 11
    observed = search(1, n=20)
    plain = tpe.suggest(SPACE, observed, [], np.random.default_rng(rng_seed))
    # The same draw with that very trial pending: it now counts as a bad observation.
    lied = tpe.suggest(SPACE, observed, [plain] * 5, np.random.default_rng(rng_seed))
    assert lied != plain


def test_failed_trials_count_as_bad_and_startup_draws_are_uniform():
    observed = [({"lr": 1e-2, "units": 40, "act": "relu", "l2": 0.3}, math.inf)] * 12
    observed += [({"lr": 0.5, "units": 3, "act": "tanh", "l2": 0.9}, 1.0)]
    params = tpe.suggest(SPACE, observed, [], np.random.default_rng(0))
    assert params["act"] != "relu" or params["units"] != 40  # the failures are in g(x)
    lrs = [tpe.suggest(SPACE, [], [], np.random.default_rng(i))["lr"] for i in range(400)]
    logs = np.log10(lrs)
    assert abs(np.mean(logs) + 2) < 0.2  # uniform in log space: mean of [-4, 0] is -2
