"""Hostile labels and names on the dashboard (issue 11), under the API's CSP.

A class label with markup became a live link in the decision-boundary colorbar title
(Plotly reads <a href> in titles). Every user-supplied string must show as text; the
browser fixture fails the test on any console error, so a CSP violation fails it too.
"""

from __future__ import annotations

import pytest

from .specs import inline_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LINK = "<a href='https://evil.example/'>click</a>"
BOLD = "<b>bold</b><img src=x onerror=alert(1)>"


def test_hostile_labels_show_as_text_in_the_boundary_chart(page, server):
    spec = inline_job(f"labels {BOLD}", epochs=20)
    spec["dataset"]["y"] = [
        LINK if label == spec["dataset"]["y"][0] else BOLD for label in spec["dataset"]["y"]
    ]
    job = server.submit_job(spec)
    server.wait_job(job["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#boundary-chart .main-svg")
    chart = page.locator("#boundary-chart")
    title = chart.locator(".cbtitle").text_content()
    assert "<a href=" in title or "<b>" in title, title  # shown literally
    assert chart.locator("a").count() == 0
    # The training points are drawn again (GET /datasets/{id}/points), their labels escaped.
    hover = chart.evaluate("el => el.data[1].hovertext")
    assert len(hover) == len(spec["dataset"]["y"])
    assert "class &lt;a href='https://evil.example/'&gt;click&lt;/a&gt;" in hover
    assert page.locator("main a[href^='https://evil']").count() == 0
    assert page.locator("main img[src='x'], main b").count() == 0
    assert page.text_content("#job-title") == spec["name"]
