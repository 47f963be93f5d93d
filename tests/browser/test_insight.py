"""Why training fails, in the dashboard: findings on the job page that point at their
charts, the explainer's vanishing δ, and the new-job form's learning-rate finder."""

from __future__ import annotations

import json

import pytest

from tests.support.jobs import blow_up_spec

from .conftest import ARTIFACTS, screenshot

pytestmark = pytest.mark.browser

# Finite all along, while the loss climbs by orders of magnitude and gradients explode.
BLOWS_UP = {
    "name": "blows up <b>bold?</b>",
    **blow_up_spec(2.3, record={"grad_norms": True, "activations": True}),
}


def in_view(page, selector: str) -> bool:
    return page.eval_on_selector(
        selector,
        """el => { const r = el.getBoundingClientRect();
                   return r.top >= 0 && r.bottom <= window.innerHeight; }""",
    )


def test_findings_are_cards_that_point_at_their_charts(page, server):
    job = server.submit_job(BLOWS_UP)
    assert server.wait_job(job["id"], {"succeeded", "failed"})["status"] == "succeeded"
    expected = server.api("GET", f"/jobs/{job['id']}/diagnostics").json()["findings"]
    codes = [f["code"] for f in expected]
    assert codes[0] == "diverged"
    assert "exploding_gradients" in codes

    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_function(
        f"document.querySelectorAll('#findings .finding').length === {len(expected)}"
    )
    cards = page.locator("#findings .finding")
    for index, finding in enumerate(expected):
        card = cards.nth(index)
        assert card.get_attribute("data-code") == finding["code"]
        assert card.get_attribute("data-severity") == finding["severity"]
        assert card.locator(".finding-message").text_content() == finding["message"]
    page.wait_for_selector("#loss-chart .main-svg")
    page.wait_for_selector("#grad-chart .main-svg")
    screenshot(page, "job-findings")

    # Each card scrolls to its chart, highlights it and marks the finding's epoch there.
    for code, chart in (("diverged", "#loss-chart"), ("exploding_gradients", "#grad-chart")):
        index = codes.index(code)
        page.locator(f"#finding-{index} button").click()
        card = f"section.card:has({chart})"
        page.wait_for_selector(f"{card}.highlighted")
        page.wait_for_function(
            f"""() => {{ const r = document.querySelector("{card}").getBoundingClientRect();
                        return r.top >= 0 && r.bottom <= window.innerHeight; }}"""
        )
        assert in_view(page, card)
        marked = page.eval_on_selector(chart, "el => (el.layout.shapes || []).map(s => s.x0)")
        assert marked == [expected[index]["epoch"]]
        page.screenshot(path=str(ARTIFACTS / f"finding-{code}.png"))  # as the user sees it
    page.wait_for_selector("section.card.highlighted", state="detached", timeout=10_000)


def test_the_explainer_shows_delta_vanishing_in_a_deep_sigmoid_network(page, server):
    with page.expect_request("**/api/v1/backprop/trace") as sent:
        page.goto(f"{server.url}/#/explain?preset=vanishing")
    body = json.loads(sent.value.post_data)
    assert [layer["activation"] for layer in body["network"]["layers"]] == ["sigmoid"] * 5
    page.wait_for_selector("#delta-chart .main-svg")
    norms = server.api("POST", "/backprop/trace", json=body).json()["delta_norms"]["layers"]

    shown = page.eval_on_selector_all(
        "#delta-table tbody tr", "rows => rows.map(r => Number(r.cells[3].dataset.value))"
    )
    assert shown == [layer["delta_ratio"] for layer in norms]
    assert all(a < b for a, b in zip(shown, shown[1:], strict=False))  # shrinking toward the input
    assert shown[0] < 1e-2
    assert "vanishes" in page.text_content("#delta-note")
    bars = page.eval_on_selector("#delta-chart", "el => el.data[0].y")
    assert bars == [layer["delta_rms"] for layer in norms]
    page.locator("#delta-card").screenshot(path=str(ARTIFACTS / "explain-vanishing-delta.png"))
    screenshot(page, "explain-vanishing")

    # A relu network with He's initialisation keeps δ's size: no warning.
    with page.expect_response("**/api/v1/backprop/trace"):
        page.select_option("#preset", "deep")
    page.wait_for_function(
        "!document.querySelector('#delta-note').textContent.includes('vanishes')"
    )


def test_the_form_finds_a_learning_rate_and_fills_it_in(page, server):
    page.goto(f"{server.url}/#/jobs")
    page.click("#new-job-toggle")
    page.wait_for_function("document.querySelectorAll('select[name=generator] option').length > 1")
    page.select_option("select[name=generator]", "moons")
    page.fill("input[name=layers]", "16")
    with page.expect_request("**/api/v1/lr-finder") as sent:
        page.click("#find-lr")
    page.wait_for_selector("#lr-chart .main-svg")
    body = json.loads(sent.value.post_data)
    assert body["dataset"]["generator"] == "moons"
    assert body["training"]["record"] == {"grad_norms": True, "activations": True}
    answer = server.api("POST", "/lr-finder", json=body).json()
    rate = float(f"{answer['suggested_learning_rate']:.3g}")

    assert float(page.input_value("input[name=learning_rate]")) == rate
    status = page.text_content("#lr-finder-status")
    assert status.startswith("Suggested ")
    assert float(status.split()[1].rstrip(":")) == rate
    drawn = page.eval_on_selector("#lr-chart", "el => el.data[0].x.length")
    assert drawn == answer["steps_run"]
    marker = page.eval_on_selector("#lr-chart", "el => el.layout.shapes[0].x0")
    assert marker == rate
    page.locator("#new-job").screenshot(path=str(ARTIFACTS / "lr-finder-form.png"))
    screenshot(page, "lr-finder")
