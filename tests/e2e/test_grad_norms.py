"""``record.grad_norms``: gradients vanish toward the input of a deep sigmoid network, not ReLU.

Two levels:

- the engine (fast, no services): the Trainer's per-epoch ‖D^(l)‖;
- the real service: both jobs submitted over HTTP (Flask test client), trained by a real
  Celery worker process on the embedded backend (SQLite + filesystem broker), and the
  curve read back from ``GET /jobs/{id}/curve``, where every point carries
  ``{"D": [...], "update_ratio": [...]}``.

The property, on the same data and seed: at every epoch the ratio ‖D^(1)‖ / ‖D^(L-1)‖
(input-side layer over output-side layer) of the sigmoid network is more than ten times
smaller than the ReLU network's; the sigmoid ratio stays below 1/10 (an order of magnitude
lost on the way down), the ReLU ratio above 1/4; and at the start of training the sigmoid
network's hidden-layer norms grow strictly from the input toward the output.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # tests/ is not a package; make tests.support importable
    sys.path.insert(0, _ROOT)

from service.app import create_app  # noqa: E402
from service.db import transaction  # noqa: E402
from service.generators import generate  # noqa: E402
from service.tenants import create_tenant_key  # noqa: E402
from tests.support.fixtures import embedded_backend, worker_process  # noqa: E402,F401
from tests.support.jobs import wait_for  # noqa: E402
from worker.nn import Trainer, TrainingConfig, network_from_spec  # noqa: E402

DEPTH = 6
DATASET = {"generator": "spirals", "n_samples": 200, "noise": 0.1, "seed": 0, "n_classes": 3}
TRAINING = {
    "optimizer": {"name": "gd", "learning_rate": 0.1},
    "epochs": 20,
    "seed": 0,
    "record": {"grad_norms": True},
}


def network(activation: str) -> dict:
    return {
        "layers": [{"units": 16, "activation": activation}] * DEPTH,
        "output": {"activation": "softmax"},
        "loss": "cross_entropy",
        "init": {"scheme": "glorot" if activation == "sigmoid" else "he"},
    }


def input_over_output(norms: list[float]) -> float:
    """‖D^(1)‖ / ‖D^(L-1)‖: how much of the gradient reaches the first layer."""
    return norms[0] / norms[-1]


def assert_vanishing_in_sigmoid_only(sigmoid: list[dict], relu: list[dict]) -> None:
    """The property, on two curves of points with grad_norms {"D", "update_ratio"}."""
    assert len(sigmoid) == len(relu) == TRAINING["epochs"]
    for point in (*sigmoid, *relu):
        D, ratios = point["grad_norms"]["D"], point["grad_norms"]["update_ratio"]
        assert len(D) == len(ratios) == DEPTH + 1
        assert all(math.isfinite(d) and d > 0 for d in D)
        assert all(r is not None and r > 0 for r in ratios)
    for s, r in zip(sigmoid, relu, strict=True):
        s_ratio = input_over_output(s["grad_norms"]["D"])
        r_ratio = input_over_output(r["grad_norms"]["D"])
        assert s_ratio < 0.1, (s["epoch"], s_ratio)
        assert r_ratio > 0.25, (r["epoch"], r_ratio)
        assert 10 * s_ratio < r_ratio, (s["epoch"], s_ratio, r_ratio)
        # With plain gradient descent the update is lr·D, so the first layer barely moves.
        s_updates = s["grad_norms"]["update_ratio"]
        assert s_updates[0] < s_updates[-1]
    first = sigmoid[0]["grad_norms"]["D"][:DEPTH]  # the hidden layers' Θ, input side first
    assert all(a < b for a, b in zip(first[:-1], first[1:], strict=True)), first


def test_engine_grad_norms_vanish_in_a_deep_sigmoid_network_only():
    data = generate(DATASET)
    Y = np.eye(3)[data.y]
    curves = {}
    for activation in ("sigmoid", "relu"):
        net = network_from_spec(network(activation), 2, 3, rng=np.random.default_rng(0))
        trainer = Trainer(net, data.X, Y, TrainingConfig.from_spec(TRAINING))
        curves[activation] = [
            {"epoch": s.epoch, "grad_norms": {"D": s.grad_norms, "update_ratio": s.update_ratios}}
            for s in trainer.epochs()
        ]
    assert_vanishing_in_sigmoid_only(curves["sigmoid"], curves["relu"])


@pytest.mark.integration
def test_service_curves_show_vanishing_gradients_in_sigmoid_not_relu(
    embedded_backend,  # noqa: F811
    worker_process,  # noqa: F811
):
    backend = embedded_backend
    worker_process(backend)
    app = create_app({"settings": backend.settings()})
    with transaction(backend.factory) as session:
        key = create_tenant_key(session, "grad-norms")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"

    ids = {}
    for activation in ("sigmoid", "relu"):
        body = {"network": network(activation), "dataset": DATASET, "training": TRAINING}
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 202, response.get_json()
        ids[activation] = response.get_json()["id"]

    def finished(job_id):
        job = client.get(f"/api/v1/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    curves = {}
    for activation, job_id in ids.items():
        job = wait_for(lambda j=job_id: finished(j), timeout=120, what=f"{activation} job")
        assert job["status"] == "succeeded", job["error"]
        # Gradient norms come only when asked for (fields=).
        curve = client.get(f"/api/v1/jobs/{job_id}/curve?fields=train_loss,grad_norms").get_json()
        assert curve["complete"] is True
        curves[activation] = curve["points"]
    assert_vanishing_in_sigmoid_only(curves["sigmoid"], curves["relu"])
