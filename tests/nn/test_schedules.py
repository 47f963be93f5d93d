"""Learning-rate schedules, with their values worked by hand."""

from __future__ import annotations

import pytest

from worker.nn import SCHEDULES, make_schedule


def test_registry_names_are_the_api_vocabulary():
    assert set(SCHEDULES) == {"constant", "step", "inverse_scaling", "plateau"}


def test_constant_step_and_inverse_scaling():
    assert make_schedule({"name": "constant"}, 0.1).rate(50) == 0.1
    assert make_schedule(None, 0.1).rate(1) == 0.1
    step = make_schedule({"name": "step", "step_size": 2, "gamma": 0.5}, 0.1)
    assert [step.rate(e) for e in range(1, 6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    inverse = make_schedule({"name": "inverse_scaling", "power": 0.5}, 0.1)
    assert inverse.rate(1) == pytest.approx(0.1)
    assert inverse.rate(4) == pytest.approx(0.05)


def test_plateau_halves_after_patience_without_improvement():
    spec = {"name": "plateau", "factor": 0.5, "patience": 2, "min_delta": 0.1, "min_lr": 0.02}
    plateau = make_schedule(spec, 0.1)
    rates = []
    # 1.0 best; 0.95, 0.92 improve by < 0.1 -> halve to 0.05; 0.5 best; 0.45, 0.44 -> 0.025;
    # 0.43, 0.42 -> 0.0125, floored at min_lr 0.02.
    for loss in [1.0, 0.95, 0.92, 0.5, 0.45, 0.44, 0.43, 0.42]:
        plateau.observe(loss)
        rates.append(plateau.rate(0))
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.02])


def test_plateau_state_round_trip():
    spec = {"name": "plateau", "factor": 0.5, "patience": 1, "min_delta": 0.0}
    a = make_schedule(spec, 0.2)
    for loss in [1.0, 1.0]:
        a.observe(loss)
    b = make_schedule(spec, 0.2)
    b.load_state_dict(a.state_dict())
    a.observe(1.0)
    b.observe(1.0)
    assert a.rate(3) == b.rate(3) == pytest.approx(0.05)
