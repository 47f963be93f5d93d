"""POST /api/v1/backprop/trace and /backprop/gradient-check through the real app.

The app runs on a temporary SQLite database migrated to head, with a real API key: the
endpoints are authenticated like every other route.
"""

from __future__ import annotations

import numpy as np
import pytest

from service.app import create_app
from service.db import make_engine, make_sessionmaker, transaction
from service.migrate import upgrade
from service.schemas.backprop import GradientCheckResponse, TraceResponse
from service.tenants import create_tenant_key
from tests.support.networks import debug_weights as ng_debug_weights

TRACE = "/api/v1/backprop/trace"
CHECK = "/api/v1/backprop/gradient-check"
PROBLEM = "application/problem+json"


@pytest.fixture
def app(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.sqlite3'}"
    upgrade(url)
    return create_app(
        {
            "database_url": url,
            "data_dir": tmp_path,
            "limits": {
                "trace_examples": 8,
                "trace_parameters": 60,
                "gradcheck_examples": 10,
                "gradcheck_parameters": 80,
            },
        }
    )


@pytest.fixture
def client(app, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    with transaction(make_sessionmaker(engine)) as session:
        key = create_tenant_key(session, "student")
    engine.dispose()
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return ConformingClient(client)


class ConformingClient:
    """The test client, checking every 200 body against the documented response model."""

    MODELS = {TRACE: TraceResponse, CHECK: GradientCheckResponse}

    def __init__(self, client):
        self.client = client

    def post(self, url, **kwargs):
        response = self.client.post(url, **kwargs)
        if response.status_code == 200 and url in self.MODELS:
            self.MODELS[url].model_validate(response.get_json())
        return response

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)


def debug_weights(fan_out, fan_in):
    """Ng's debug weights as JSON lists."""
    return ng_debug_weights(fan_out, fan_in).tolist()


def ng_check_body(l2):
    """Ng's checkNNGradients: 3-5-3 sigmoid network, m = 5, labels y = 1 + mod(1:m, 3)."""
    return {
        "network": {
            "layers": [{"units": 5, "activation": "sigmoid"}],
            "output": {"activation": "sigmoid"},
            "loss": "binary_cross_entropy",
        },
        "weights": {"format": "theta", "layers": [debug_weights(5, 3), debug_weights(3, 5)]},
        "X": debug_weights(5, 2),
        "y": [int(1 + t % 3) for t in range(1, 6)],
        "l2": l2,
    }


def assert_problem(response, status, loc_prefix=None):
    assert response.status_code == status, response.get_json()
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    if loc_prefix is not None:
        assert any(e["loc"][: len(loc_prefix)] == loc_prefix for e in body["errors"]), body
    return body


@pytest.mark.parametrize("l2", [0, 3])
def test_ng_check_over_http_is_below_1e9(client, l2):
    response = client.post(CHECK, json={**ng_check_body(l2), "epsilon": 1e-4})
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["relative_difference"] < 1e-9
    assert report["passed"] is True
    assert report["threshold"] == 1e-7
    assert report["epsilon"] == 1e-4
    assert report["n_parameters"] == report["n_checked"] == 38
    assert [p["layer"] for p in report["per_layer"]] == [1, 2]
    assert report["worst"]["layer"] in (1, 2)
    assert report["weights"]["source"] == "request"
    np.testing.assert_allclose(report["weights"]["theta"][0], debug_weights(5, 3), rtol=1e-15)
    # the labels 2, 3, 1, 2, 3 became one-hot rows over the sorted classes
    assert report["targets"]["classes"] == [1, 2, 3]
    assert report["targets"]["Y"][0] == [0.0, 1.0, 0.0]


def test_trace_D_matches_the_gradient_check_of_the_same_request(client):
    body = ng_check_body(3)
    trace = client.post(TRACE, json={**body, "per_example": True}).get_json()
    check = client.post(CHECK, json={**body, "include_gradients": True}).get_json()
    for layer, numerical in zip(trace["layers"][:-1], check["numerical"], strict=True):
        np.testing.assert_allclose(layer["D"], numerical, rtol=1e-6, atol=1e-10)
    for index, layer in enumerate(trace["layers"][:-1]):
        total = sum(np.asarray(e["layers"][index]["contribution"]) for e in trace["examples"])
        np.testing.assert_allclose(total, layer["Delta"], rtol=1e-12, atol=1e-15)
    assert trace["lambda"] == 3
    assert set(trace["notation"]) >= {"a", "z", "delta", "Delta", "D", "D_data", "D_reg"}
    assert trace["cost"]["total"] == pytest.approx(
        trace["cost"]["data"] + trace["cost"]["regularization"], rel=1e-15
    )


def test_weights_in_wb_layout_give_the_same_trace(client):
    body = ng_check_body(1)
    thetas = [np.asarray(t) for t in body["weights"]["layers"]]
    wb = [{"W": t[:, 1:].T.tolist(), "b": t[:, 0].tolist()} for t in thetas]
    by_theta = client.post(TRACE, json=body).get_json()
    by_wb = client.post(TRACE, json={**body, "weights": {"format": "wb", "layers": wb}}).get_json()
    assert by_wb["layers"] == by_theta["layers"]
    inside_init = {**body, "weights": None}
    inside_init["network"] = {**body["network"], "init": {"weights": body["weights"]}}
    assert client.post(TRACE, json=inside_init).get_json()["layers"] == by_theta["layers"]


def test_omitted_weights_are_drawn_from_init_with_the_seed_and_returned(client):
    body = {**ng_check_body(0), "weights": None, "seed": 7}
    body["network"] = {**body["network"], "init": {"scheme": "ng"}}
    first = client.post(TRACE, json=body).get_json()
    again = client.post(TRACE, json=body).get_json()
    other = client.post(TRACE, json={**body, "seed": 8}).get_json()
    assert first["weights"]["source"] == "init"
    assert first["weights"]["init"] == "ng"
    assert first["weights"]["seed"] == 7
    assert first["weights"] == again["weights"]
    assert first["weights"]["theta"] != other["weights"]["theta"]
    # the returned weights reproduce the trace when sent back
    replay = {**body, "weights": {"format": "theta", "layers": first["weights"]["theta"]}}
    assert client.post(TRACE, json=replay).get_json()["layers"] == first["layers"]


def test_regression_targets_and_unmatched_pairs(client):
    rng = np.random.default_rng(0)
    body = {
        "network": {
            "layers": [{"units": 3, "activation": "tanh"}],
            "output": {"activation": "sigmoid"},
            "loss": "mse",
            "init": {"scheme": "glorot"},
        },
        "X": rng.normal(size=(4, 2)).tolist(),
        "y": [0.1, 0.9, 0.4, 0.6],
        "l2": 0.5,
    }
    trace = client.post(TRACE, json=body).get_json()
    assert trace["targets"]["Y"] == [[0.1], [0.9], [0.4], [0.6]]
    assert trace["output_delta"].startswith("unmatched")
    check = client.post(CHECK, json=body).get_json()
    assert check["passed"] is True


def test_authentication_is_required(app):
    response = app.test_client().post(TRACE, json=ng_check_body(0))
    assert_problem(response, 401)
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    ("url", "limit", "field"),
    [(TRACE, "trace_examples", "X"), (CHECK, "gradcheck_examples", "X")],
)
def test_too_many_examples_is_413_naming_the_limit(client, url, limit, field):
    body = ng_check_body(0)
    body["X"] = body["X"] * 3  # 15 examples
    body["y"] = body["y"] * 3
    problem = assert_problem(client.post(url, json=body), 413, ["body", field])
    assert limit in problem["detail"]


@pytest.mark.parametrize(
    ("url", "limit"), [(TRACE, "trace_parameters"), (CHECK, "gradcheck_parameters")]
)
def test_too_many_parameters_is_413_naming_the_limit(client, url, limit):
    body = {**ng_check_body(0), "weights": None}
    body["network"] = {**body["network"], "layers": [{"units": 20, "activation": "sigmoid"}]}
    problem = assert_problem(client.post(url, json=body), 413, ["body", "network"])
    assert limit in problem["detail"]
    assert "143 parameters" in problem["detail"]  # (3+1)·20 + (20+1)·3


def test_a_wrong_theta_shape_is_422_at_that_layer(client):
    body = ng_check_body(0)
    body["weights"]["layers"][1] = debug_weights(3, 4)  # (3, 5) where (3, 6) is needed
    problem = assert_problem(client.post(TRACE, json=body), 422, ["body", "weights", "layers", 1])
    assert "(3, 6)" in problem["detail"]


def test_a_wrong_wb_shape_is_422_at_that_field(client):
    body = ng_check_body(0)
    thetas = [np.asarray(t) for t in body["weights"]["layers"]]
    wb = [{"W": t[:, 1:].T.tolist(), "b": t[:, 0].tolist()} for t in thetas]
    wb[0]["b"] = wb[0]["b"][:4]
    body["weights"] = {"format": "wb", "layers": wb}
    assert_problem(client.post(CHECK, json=body), 422, ["body", "weights", "layers", 0, "b"])


def test_the_wrong_number_of_layers_is_422(client):
    body = ng_check_body(0)
    body["weights"]["layers"] = body["weights"]["layers"][:1]
    assert_problem(client.post(TRACE, json=body), 422, ["body", "weights", "layers"])


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"X": [[1.0, 2.0, 3.0], [1.0, 2.0]]}, ["body", "X"]),
        ({"y": [1, 2, 3]}, ["body", "y"]),
        ({"y": [1, 2, 3, 2, 9], "classes": [1, 2, 3]}, ["body", "y", 4]),
        ({"l2": -1}, ["body", "l2"]),
        ({"X": []}, ["body", "X"]),
        ({"network": {"output": {"activation": "softmax"}, "loss": "nope"}}, ["body", "network"]),
        ({"network": {"layers": [{"units": 5, "activation": "softmax"}],
                      "output": {"activation": "sigmoid"}, "loss": "mse"}}, ["body", "network"]),
        ({"epsilon": 0}, ["body", "epsilon"]),
        ({"surprise": 1}, ["body", "surprise"]),
    ],
)  # fmt: skip
def test_bad_input_is_422_with_the_field_location(client, change, loc):
    body = {**ng_check_body(0), **change}
    assert_problem(client.post(CHECK, json=body), 422, loc)


def test_weights_given_twice_is_422(client):
    body = ng_check_body(0)
    body["network"] = {**body["network"], "init": {"weights": body["weights"]}}
    assert_problem(client.post(TRACE, json=body), 422, ["body", "weights"])


def test_malformed_json_is_400(client):
    response = client.post(TRACE, data="{not json", content_type="application/json")
    assert_problem(response, 400)


def test_a_saturated_output_is_422_not_invalid_json(client):
    body = {
        "network": {"layers": [], "output": {"activation": "identity"}, "loss": "mse"},
        "weights": {"format": "theta", "layers": [[[0.0, 1e200]]]},
        "X": [[1e200], [1.0]],
        "y": [0.0, 1.0],
    }
    problem = assert_problem(client.post(TRACE, json=body), 422, ["body", "network"])
    assert "not finite" in problem["detail"]


def test_openapi_documents_both_routes(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/backprop/trace", "/api/v1/backprop/gradient-check"):
        operation = spec["paths"][path]["post"]
        assert {"200", "413", "422", "401"} <= set(operation["responses"])
        assert operation["security"] == [{"bearerAuth": []}]
    assert "TraceResponse" in spec["components"]["schemas"]
    assert "GradientCheckResponse" in spec["components"]["schemas"]


def test_string_labels_follow_the_given_class_order(client):
    body = {**ng_check_body(0), "y": ["b", "c", "a", "b", "c"], "classes": ["c", "b", "a"]}
    response = client.post(TRACE, json=body)
    assert response.status_code == 200, response.get_json()
    targets = response.get_json()["targets"]
    assert targets["classes"] == ["c", "b", "a"]
    assert targets["Y"][:3] == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    # without classes, the sorted distinct labels
    default = client.post(TRACE, json={**body, "classes": None}).get_json()["targets"]
    assert default["classes"] == ["a", "b", "c"]
    assert default["Y"][0] == [0.0, 1.0, 0.0]


def one_unit_body(l2, y=("no", "yes", "yes", "no", "yes")):
    """Two classes on one sigmoid output unit (Ng's binary classification)."""
    return {
        "network": {
            "layers": [{"units": 4, "activation": "tanh"}],
            "output": {"activation": "sigmoid", "units": 1},
            "loss": "binary_cross_entropy",
            "init": {"scheme": "ng"},
        },
        "seed": 3,
        "X": debug_weights(5, 3),
        "y": list(y),
        "l2": l2,
    }


@pytest.mark.parametrize("l2", [0, 1])
def test_two_classes_on_one_sigmoid_unit_pass_the_gradient_check(client, l2):
    report = client.post(CHECK, json={**one_unit_body(l2), "epsilon": 1e-4}).get_json()
    assert report["relative_difference"] < 1e-9, report
    assert report["passed"] is True
    assert report["n_parameters"] == (4 + 1) * 4 + (4 + 1) * 1  # X has 4 features
    assert report["targets"]["classes"] == ["no", "yes"]
    assert report["targets"]["Y"] == [[0.0], [1.0], [1.0], [0.0], [1.0]]  # 1 = the second class
    (theta_out,) = report["weights"]["theta"][1:]
    assert np.shape(theta_out) == (1, 5)
    trace = client.post(TRACE, json=one_unit_body(l2)).get_json()
    assert np.shape(trace["layers"][-1]["a"]) == (5, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y": ["a", "b", "c", "a", "b"]}, "two classes"),
        ({"network": {**one_unit_body(0)["network"], "loss": "cross_entropy",
                      "output": {"activation": "softmax", "units": 1}}}, "sigmoid"),
    ],
)  # fmt: skip
def test_one_output_unit_needs_two_classes_and_a_sigmoid(client, change, message):
    body = assert_problem(
        client.post(CHECK, json={**one_unit_body(0), **change}),
        422,
        ["body", "network", "output", "units"],
    )
    assert message in body["detail"]
