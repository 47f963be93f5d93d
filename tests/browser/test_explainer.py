"""The backprop explainer shows exactly what the trace and gradient-check endpoints return."""

from __future__ import annotations

import json
import math

import pytest

from .conftest import screenshot

pytestmark = pytest.mark.browser


def matrix_on_page(page, name: str) -> list[list[float]]:
    """The exact values (data-value) of the table data-matrix=name, as rows."""
    return page.eval_on_selector(
        f"table[data-matrix='{name}']",
        """t => [...t.tBodies[0].rows].map(r =>
               [...r.querySelectorAll('td')].map(td => Number(td.dataset.value)))""",
    )


def column(values: list[float]) -> list[list[float]]:
    return [[v] for v in values]


def close(a: list[list[float]], b: list[list[float]]) -> bool:
    return len(a) == len(b) and all(
        len(ra) == len(rb)
        and all(
            math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15) for x, y in zip(ra, rb, strict=True)
        )
        for ra, rb in zip(a, b, strict=True)
    )


def test_explainer_shows_the_same_numbers_as_the_api(page, server):
    with page.expect_request("**/api/v1/backprop/trace") as sent:
        page.goto(f"{server.url}/#/explain")
    body = json.loads(sent.value.post_data)
    page.wait_for_selector("#gradient-card")
    trace = server.api("POST", "/backprop/trace", json=body).json()
    check = server.api(
        "POST",
        "/backprop/gradient-check",
        json={**{k: v for k, v in body.items() if k != "per_example"}, "include_gradients": True},
    ).json()
    assert body["per_example"] is True
    assert len(body["X"]) == trace["m"] >= 2

    # The full-batch Δ and D, and the numerical gradient beside D, cell for cell.
    for index, layer in enumerate(layer for layer in trace["layers"] if layer.get("Theta")):
        number = layer["l"]
        assert matrix_on_page(page, f"Delta{number}") == layer["Delta"]
        assert matrix_on_page(page, f"D{number}") == layer["D"]
        assert matrix_on_page(page, f"numerical{number}") == check["numerical"][index]
    assert page.text_content("#check-passed") == (
        "gradient check passed" if check["passed"] else "gradient check failed"
    )

    # Example 1: a, z and δ of every layer; its contribution δa^T is Δ so far.
    first = trace["examples"][0]
    for layer in first["layers"]:
        assert matrix_on_page(page, f"a{layer['l']}") == column(layer["a"])
        if layer.get("z") is not None:
            assert matrix_on_page(page, f"z{layer['l']}") == column(layer["z"])
            assert matrix_on_page(page, f"delta{layer['l']}") == column(layer["delta"])
        if layer.get("contribution") is not None:
            assert matrix_on_page(page, f"running{layer['l']}") == layer["contribution"]
    screenshot(page, "explain")

    # Step to the last example: the running sum of contributions has become Δ.
    for _ in range(trace["m"] - 1):
        page.click("#step-next")
    page.wait_for_selector(f"#step-label:text-matches('t = {trace['m']} of')")
    last = trace["examples"][-1]
    for layer, full in zip(last["layers"], trace["layers"], strict=True):
        if layer.get("contribution") is not None:
            assert matrix_on_page(page, f"contribution{layer['l']}") == layer["contribution"]
            assert close(matrix_on_page(page, f"running{layer['l']}"), full["Delta"])
    assert page.is_disabled("#step-next")
    checks = page.eval_on_selector_all("[data-sum-check]", "ps => ps.map(p => p.dataset.sumCheck)")
    assert checks == ["equal"] * (len(trace["layers"]) - 1)
    screenshot(page, "explain-last-example")


def test_explainer_uses_typed_weights_and_regularisation(page, server):
    page.goto(f"{server.url}/#/explain")
    page.wait_for_selector("#gradient-card")
    page.select_option("select[name=weights_mode]", "theta")
    theta = json.loads(page.input_value("textarea[name=theta]"))
    theta[0][0][1] = 0.75
    page.fill("textarea[name=theta]", json.dumps(theta))
    page.fill("input[name=l2]", "1.5")
    with page.expect_response("**/api/v1/backprop/trace") as answered:
        page.click("#run-trace")
    trace = answered.value.json()
    assert trace["weights"]["source"] == "request"
    assert trace["weights"]["theta"][0][0][1] == 0.75
    assert trace["lambda"] == 1.5
    expected = trace["layers"][0]["D"][0][0]
    page.wait_for_function(
        "expected => { const td = document.querySelector(\"table[data-matrix='D1'] td\");"
        " return td !== null && Number(td.dataset.value) === expected; }",
        arg=expected,
    )
    # With λ > 0, D is shown as its two parts: Δ/m from the data and (λ/m)Θ from the penalty.
    for layer in trace["layers"]:
        if layer.get("Theta"):
            number = layer["l"]
            assert matrix_on_page(page, f"D_data{number}") == layer["D_data"]
            assert matrix_on_page(page, f"D_reg{number}") == layer["D_reg"]
            assert all(row[0] == 0 for row in matrix_on_page(page, f"D_reg{number}"))
    screenshot(page, "explain-regularised")


@pytest.mark.parametrize("preset", ["softmax", "deep", "regression"])
def test_every_preset_traces_and_passes_the_gradient_check(page, server, preset):
    page.goto(f"{server.url}/#/explain")
    page.wait_for_selector("#gradient-card")
    with page.expect_response("**/api/v1/backprop/gradient-check") as answered:
        page.select_option("#preset", preset)
    check = answered.value.json()
    assert check["passed"], check
    page.wait_for_function(
        "m => document.querySelector('#step-label').textContent.includes(`of ${m}`)",
        arg=check["n_examples"],
    )
    assert page.text_content("#check-passed") == "gradient check passed"
    screenshot(page, f"explain-{preset}")


def test_a_relu_kink_is_explained_when_the_check_fails(page, server):
    # Hidden unit 1 has zero weights and bias: its z is exactly 0, ReLU's kink, for every x.
    theta = [[[0, 0, 0], [0.1, 1, 0.5]], [[0.1, 0.5, -0.3], [0.2, -0.4, 0.6]]]
    page.goto(f"{server.url}/#/explain")
    page.wait_for_selector("#gradient-card")
    page.fill("input[name=layers]", "2")
    page.select_option("select[name=activation]", "relu")
    page.select_option("select[name=weights_mode]", "theta")
    page.fill("textarea[name=theta]", json.dumps(theta))
    page.fill("textarea[name=examples]", "0.5, -1.2 | 1\n1.0, 0.3 | 0")
    with (
        page.expect_response("**/api/v1/backprop/gradient-check") as checked,
        page.expect_response("**/api/v1/backprop/trace") as traced,
    ):
        page.click("#run-trace")
    check, trace = checked.value.json(), traced.value.json()
    assert check["passed"] is False
    at_kinks = sum(
        abs(z) <= check["epsilon"]
        for layer in trace["layers"]
        if layer.get("activation") == "relu"
        for row in layer["z"]
        for z in row
    )
    assert at_kinks >= 2  # unit 1 for both examples
    page.wait_for_selector("#check-passed:text('gradient check failed')")
    assert page.text_content("#kink-note").startswith(f"{at_kinks} ReLU pre-activations")
    screenshot(page, "explain-relu-kink")
