"""What a newcomer tripped on in the dashboard (issue 17): a cancelled batch's bar, the
accuracy column, the batch chart's legend under Plotly's toolbar, and superscripts."""

from __future__ import annotations

import pytest

from .specs import long_job, quick_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def batch_of(server, name: str, base: dict, values: list) -> dict:
    created = server.api(
        "POST",
        "/batches",
        json={"name": name, "base": base, "grid": {"training.optimizer.learning_rate": values}},
    )
    assert created.status_code == 202, created.text
    return created.json()


def without_name(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "name"}


def bar_class(page, selector: str) -> str:
    return page.get_attribute(selector, "class") or ""


def test_a_cancelled_batch_is_not_drawn_as_succeeded(page, server):
    quick = without_name(quick_job("q", epochs=5))
    quick["dataset"]["validation_split"] = 0.2
    done = batch_of(server, "all succeed", quick, [0.01, 0.05])
    stopped = batch_of(server, "all cancelled", without_name(long_job("l")), [0.001, 0.002])
    assert server.api("POST", f"/batches/{stopped['id']}/cancel").status_code == 202
    for job_id in stopped["job_ids"]:
        server.wait_job(job_id, {"cancelled"})
    for job_id in done["job_ids"]:
        server.wait_job(job_id, {"succeeded"})

    page.goto(f"{server.url}/#/batches")
    row = '#batches-table tr[data-batch-id="{}"] .progress'
    page.wait_for_selector(row.format(stopped["id"]))
    page.wait_for_selector(row.format(done["id"]) + ".progress-succeeded")
    assert "progress-cancelled" in bar_class(page, row.format(stopped["id"]))
    assert "progress-succeeded" not in bar_class(page, row.format(stopped["id"]))

    page.goto(f"{server.url}/#/batches/{stopped['id']}")
    page.wait_for_selector("#batch-counts >> text=/cancelled/")
    page.wait_for_selector(".progress-cancelled")
    classes = page.eval_on_selector_all(".progress", "els => els.map(e => e.className)")
    assert any("progress-cancelled" in c for c in classes), classes
    assert not any("progress-succeeded" in c for c in classes), classes

    # The batch chart's legend is clear of Plotly's toolbar, also while it shows on hover.
    page.goto(f"{server.url}/#/batches/{done['id']}")
    page.wait_for_selector('#batch-chart[data-jobs="2"]')
    page.hover("#batch-chart .nsewdrag")
    page.wait_for_selector("#batch-chart .modebar >> visible=true")
    overlap = page.eval_on_selector(
        "#batch-chart",
        """el => {
          const a = el.querySelector('.modebar').getBoundingClientRect();
          const b = el.querySelector('.legend').getBoundingClientRect();
          const apart = a.right <= b.left || b.right <= a.left;
          return !(apart || a.bottom <= b.top || b.bottom <= a.top);
        }""",
    )
    assert overlap is False


def test_the_accuracy_column_says_which_accuracy_it_shows(page, server):
    with_validation = quick_job("with validation", epochs=5)
    with_validation["dataset"]["validation_split"] = 0.2
    jobs = [server.submit_job(with_validation), server.submit_job(quick_job("no validation", 5))]
    for job in jobs:
        server.wait_job(job["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs")
    cell = '#jobs-table tr[data-job-id="{}"] [data-accuracy]'
    for job in jobs:
        page.wait_for_selector(cell.format(job["id"]))
    assert page.text_content(cell.format(jobs[0]["id"])) == "val"
    assert page.text_content(cell.format(jobs[1]["id"])) == "train"
    headers = page.eval_on_selector_all("#jobs-table th", "els => els.map(e => e.textContent)")
    assert "Accuracy (val, else train)" in headers


def test_layer_superscripts_are_markup_not_odd_glyphs(page, server):
    spec = quick_job("gradient norms", epochs=20)
    spec["training"]["record"] = {"grad_norms": True}
    job = server.submit_job(spec)
    server.wait_job(job["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#grad-chart .legend")
    names = page.eval_on_selector("#grad-chart", "el => el.data.map(t => t.name)")
    layers = [n for n in names if n.startswith("‖D")]
    assert layers == ["‖D<sup>(1)</sup>‖", "‖D<sup>(2)</sup>‖"], names
    text = page.text_content("body")
    assert "⁽" not in text
    assert "⁾" not in text


def test_the_key_dialog_gives_a_command_that_works_after_make_run(anonymous_page, server):
    page = anonymous_page
    page.goto(server.url + "/")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    commands = page.eval_on_selector_all("#key-dialog code", "els => els.map(e => e.textContent)")
    assert "make key TENANT=NAME" in commands
    assert ".venv/bin/deltaflow create-key --tenant NAME" in commands
    assert "deltaflow create-key --tenant NAME" not in commands  # not on PATH after make run
