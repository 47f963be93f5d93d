"""The batch page's Compare card: parallel coordinates over the parameters that differ and
the chosen metric, which parameter mattered, and a table of only what differs — on a
sweep seeded into the system's database (tests/browser/seeding.py) whose learning rate
drives the loss and whose L2 barely does."""

from __future__ import annotations

import json
import os

import pytest

from .conftest import screenshot
from .seeding import seed_sweep

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZE = 40
LR = "training.optimizer.learning_rate"


@pytest.fixture
def sweep(server):
    if server.data_dir is None:
        message = "the compare test seeds the embedded system's database: not available"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        print(f"\n*** SKIPPING: {message} ***")  # noqa: T201 - say it loudly
        pytest.skip(message)
    return seed_sweep(server.data_dir, server.tenant, "compare", SIZE, True, seed=3)


def test_parallel_coordinates_importance_and_what_differs(page, server, sweep):
    page.goto(f"{server.url}/#/batches/{sweep.batch_id}")
    plot = "#batch-parcoords"
    page.wait_for_function(f"() => document.querySelector('{plot}').dataset.lines === '{SIZE}'")
    labels = page.eval_on_selector(plot, "el => el.dataset.dimensions").split("|")
    assert labels == ["learning_rate (log)", "l2", "validation loss (last)"]
    # One line per job, its colour from the metric's last value (the best bright).
    summary = server.api("GET", f"/batches/{sweep.batch_id}", params={"metric": "val_loss"}).json()
    values = page.locator(f"{plot} path.pc-line").evaluate_all(
        "ls => Object.fromEntries(ls.map(l => [l.dataset.jobId, Number(l.dataset.value)]))"
    )
    assert values == {job["id"]: job["summary"]["val_loss"]["last"] for job in summary["jobs"]}
    assert len(page.locator(f"{plot} g.pc-axis").all()) == 3
    # Coloured by rank on the metric (lowest loss brightest), not by value: evenly spread
    # over the colour scale whatever outliers the sweep has.
    drawn = page.locator(f"{plot} path.pc-line").evaluate_all(
        "ls => ls.map(l => [l.dataset.jobId, l.getAttribute('stroke')])"
    )
    best_first = sorted(values, key=lambda job_id: values[job_id])
    expected = page.evaluate(
        "n => import('/static/parcoords.js').then("
        "m => Array.from({length: n}, (_, r) => m.viridis((n - 1 - r) / (n - 1))))",
        len(best_first),
    )
    assert dict(drawn) == dict(zip(best_first, expected, strict=True))

    # Importance: the bars in the API's order, the learning rate first.
    page.wait_for_function(
        "() => document.querySelector('#batch-importance').dataset.state === 'ready'"
    )
    expected = server.api(
        "GET", f"/batches/{sweep.batch_id}/importance", params={"metric": "val_loss"}
    ).json()
    bars = page.locator("#batch-importance .importance-row").evaluate_all(
        "rows => rows.map(r => r.dataset.param)"
    )
    assert bars == [p["name"] for p in expected["params"]]
    assert bars[0] == LR
    # What differs: one row per varied parameter, most important first.
    rows = page.locator("#batch-differs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.param)"
    )
    assert rows == [LR, "training.l2"]

    # Each job's minimum instead of its last value: the axis and the importance follow.
    page.select_option("#batch-reduce", "min")
    page.wait_for_function(
        f"() => document.querySelector('{plot}').dataset.dimensions.endsWith('(min)')"
    )
    page.wait_for_function(
        "() => document.querySelector('#batch-importance').dataset.state === 'ready'"
    )
    values = page.locator(f"{plot} path.pc-line").evaluate_all(
        "ls => Object.fromEntries(ls.map(l => [l.dataset.jobId, Number(l.dataset.value)]))"
    )
    assert values == {job["id"]: job["summary"]["val_loss"]["min"] for job in summary["jobs"]}
    # The page's own results table is still there, every job in it.
    page.wait_for_function(
        f"() => document.querySelectorAll('#batch-table tbody tr').length === {SIZE}"
    )
    screenshot(page, "batch-compare")

    # Only parameters whose values differ become axes.
    kept = page.evaluate(
        "() => import('/static/parcoords.js').then(m => Object.keys(m.differing("
        "[{params: {a: 1, b: 2, c: 'x'}}, {params: {a: 1, b: 3, c: 'y'}}])))"
    )
    assert kept == ["b", "c"]


def test_the_jobs_page_filters_orders_by_summaries_and_overlays_selected_jobs(
    page, server, sweep, problems
):
    everything = server.api(
        "GET", "/jobs", params={"batch_id": sweep.batch_id, "limit": 100, "spec": "false"}
    ).json()["items"]
    lows = sorted(job["summary"]["val_loss"]["min"] for job in everything)
    cut = lows[len(lows) // 3]  # about a third of the sweep is below it
    text = f"batch_id = '{sweep.batch_id}' and summary.val_loss.min < {cut!r}"
    expected = server.api(
        "GET", "/jobs", params={"filter": text, "order_by": "summary.val_loss.min", "limit": 100}
    ).json()["items"]
    assert 1 < len(expected) < SIZE

    page.goto(f"{server.url}/#/jobs")
    page.fill("#jobs-filter", text)
    page.press("#jobs-filter", "Enter")
    rows = "#jobs-table tbody tr"
    page.wait_for_function(f"() => document.querySelectorAll('{rows}').length === {len(expected)}")
    # Best first by the best validation loss: a click on its column.
    page.click("#jobs-table th[data-order='summary.val_loss.min']")
    page.wait_for_function("() => location.hash.includes('order_by=summary.val_loss.min')")
    ids = [job["id"] for job in expected]
    page.wait_for_function(
        f"() => JSON.stringify([...document.querySelectorAll('{rows}')].map(r => r.dataset.jobId))"
        f" === {json.dumps(json.dumps(ids, separators=(',', ':')))}"
    )
    # Two jobs selected, their curves overlaid.
    page.locator(f"{rows} input.overlay-pick").nth(0).check()
    page.locator(f"{rows} input.overlay-pick").nth(1).check()
    page.click("#overlay-button")
    page.wait_for_function("() => document.querySelector('#jobs-overlay').dataset.traces === '2'")
    page.wait_for_function("() => document.querySelector('#jobs-overlay').data?.length === 2")
    lengths = page.eval_on_selector("#jobs-overlay", "el => el.data.map(t => t.x.length)")
    assert all(length > 10 for length in lengths)
    assert page.eval_on_selector("#jobs-overlay", "el => el.dataset.jobs") == ",".join(ids[:2])
    screenshot(page, "jobs-search-overlay")

    # A bad expression: the list says which token is wrong.
    page.fill("#jobs-filter", "summary.val_loss.min < 'x'")
    page.press("#jobs-filter", "Enter")
    page.wait_for_function(
        "() => document.querySelector('.error-line')?.textContent.includes(\"unexpected `'x'`\")"
    )
    # The browser logs the 422 itself; that one console line is expected here.
    problems.console_errors[:] = [e for e in problems.console_errors if "422" not in e]
