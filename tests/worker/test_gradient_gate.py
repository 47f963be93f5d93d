"""The job-level gradient gate: a kink-aware check, a readable failure, a fenced report."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from service.db import make_engine, make_sessionmaker, transaction
from service.job_progress import record_gradient_check
from service.models import Base, Job, Tenant
from worker.gradient_gate import (
    KINK_EPSILON,
    check_before_training,
    failure_message,
)
from worker.nn import gradient_check, network_from_spec


def net_for(hidden, sizes, seed, dtype="float64"):
    spec = {
        "layers": [{"units": u, "activation": hidden} for u in sizes[1:-1]],
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "he"},
    }
    return network_from_spec(
        spec, sizes[0], sizes[-1], rng=np.random.default_rng(seed), dtype=dtype
    )


def data(seed, n, d, k):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), np.eye(k)[rng.integers(0, k, size=n)]


@pytest.mark.parametrize("seed", range(6))
def test_relu_networks_pass_although_examples_sit_near_kinks(seed):
    X, Y = data(seed, 300, 2, 3)
    net = net_for("relu", [2, 8, 8, 3], seed)
    report = check_before_training(net, X, Y, 0.1, max_examples=256, max_parameters=400, seed=seed)
    assert report["passed"], report
    assert report["epsilon"] == KINK_EPSILON
    assert report["n_examples"] + report["examples_on_kinks"] == 256


def test_a_plain_centered_difference_fails_on_the_same_relu_network():
    """Why the gate is kink-aware: ε = 1e-4 over every example straddles ReLU kinks."""
    failures = 0
    for seed in range(6):
        X, Y = data(seed, 256, 2, 3)
        net = net_for("relu", [2, 8, 8, 3], seed)
        report = gradient_check(net, X, Y, l2=0.1, epsilon=1e-4)
        failures += not report.passed
    assert failures > 0


def test_smooth_networks_use_the_usual_epsilon_and_a_parameter_sample():
    X, Y = data(1, 50, 4, 3)
    net = net_for("tanh", [4, 30, 30, 3], 1, dtype="float32")
    before = [w.copy() for w in net.weights]
    report = check_before_training(net, X, Y, 0.0, max_examples=20, max_parameters=100, seed=3)
    assert report["passed"], report
    assert report["epsilon"] == 1e-4
    assert report["n_examples"] == 20
    assert report["examples_on_kinks"] == 0
    assert report["n_parameters"] == 5 * 30 + 31 * 30 + 31 * 3
    assert report["n_checked"] <= 103
    # float32 training weights are checked on a float64 copy and left untouched
    for a, b in zip(before, net.weights, strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


class WrongBias:
    def __init__(self, net):
        self.net, self.weights, self.biases = net, net.weights, net.biases

    def cost(self, X, Y, l2):
        return self.net.cost(X, Y, l2)

    def gradients(self, X, Y, l2):
        cost, dW, db = self.net.gradients(X, Y, l2)
        db = [b.copy() for b in db]
        db[1][2] *= 2.0
        return cost, dW, db


def test_failure_message_names_the_worst_parameter():
    X, Y = data(0, 10, 2, 3)
    net = net_for("tanh", [2, 4, 3], 0)
    net.biases[1][:] = [0.3, -0.2, 0.5]
    report = gradient_check(WrongBias(net), X, Y).to_dict()
    assert not report["passed"]
    message = failure_message(report)
    assert message.startswith("gradient check failed: relative difference ")
    assert "Θ^(2)[2, 0] (a bias)" in message
    assert f"{report['worst']['numerical']:.6e}" in message


@pytest.fixture
def factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    Base.metadata.create_all(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def make_job(factory, status="running", attempt=2):
    with transaction(factory) as session:
        tenant = Tenant(name="t")
        session.add(tenant)
        session.flush()
        job = Job(tenant_id=tenant.id, name="j", spec={}, epochs=1, status=status, attempt=attempt)
        session.add(job)
        session.flush()
        return job.id


def test_the_report_is_fenced_by_attempt(factory):
    job_id = make_job(factory)
    report = {"passed": True, "relative_difference": 1e-11}
    assert not record_gradient_check(factory, job_id, 1, report)  # a stale attempt cannot write
    with factory() as session:
        assert session.scalar(select(Job.gradient_check).where(Job.id == job_id)) is None
    assert record_gradient_check(factory, job_id, 2, report)
    with factory() as session:
        job = session.get(Job, job_id)
        assert job.gradient_check == report
        assert job.version == 2


def test_the_report_does_not_touch_a_finished_job(factory):
    job_id = make_job(factory, status="cancelled")
    assert not record_gradient_check(factory, job_id, 2, {"passed": False})
