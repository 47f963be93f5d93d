"""The job pages against a real worker: the key, live curves, cancel, model, escaping, the form."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest

from .conftest import KEY_STORAGE, screenshot
from .specs import inline_job, long_job, quick_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def points_on(page, selector: str) -> int:
    return int(page.get_attribute(selector, "data-points") or 0)


def test_key_is_entered_once_and_kept(anonymous_page, server):
    page = anonymous_page
    page.goto(server.url + "/")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    screenshot(page, "key-dialog")
    page.fill("#key-input", server.key)
    page.click("#key-save")
    page.wait_for_selector("h1:text('Jobs')")
    assert page.evaluate(f"localStorage.getItem('{KEY_STORAGE}')") == server.key

    page.reload()
    page.wait_for_selector("h1:text('Jobs')")
    assert not dialog.is_visible()
    assert page.text_content("#key-button").startswith("Key ")


def test_curve_grows_while_a_real_worker_trains(page, server):
    job = server.submit_job(long_job("growing curve"))
    curve_urls: list[str] = []
    curve_path = f"/api/v1/jobs/{job['id']}/curve"
    page.on("request", lambda r: curve_urls.append(r.url) if curve_path in r.url else None)
    try:
        page.goto(f"{server.url}/#/jobs/{job['id']}")
        page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) >= 2")
        first = points_on(page, "#loss-chart")
        page.wait_for_function(
            f"Number(document.querySelector('#loss-chart').dataset.points) > {first}"
        )
        page.wait_for_selector("#grad-chart >> visible=true")
        screenshot(page, "job-running")

        grown, drawn = page.eval_on_selector(
            "#loss-chart", "el => [Number(el.dataset.points), el.data.map(t => t.x.length)]"
        )
        assert grown > first
        # Train and validation lines, one point per epoch received.
        assert drawn == [grown, grown]
        epochs = page.eval_on_selector("#loss-chart", "el => el.data[0].x")
        assert epochs == list(range(1, len(epochs) + 1)), "each epoch exactly once, in order"
        # Two hidden layers and the output: one gradient-norm line per layer, plus ratios.
        assert page.get_attribute("#grad-chart", "data-layers") == "3"
        assert page.locator("text=/ETA/").count() >= 1

        # Only new points are asked for: after the first request every one carries `since`.
        sinces = [parse_qs(urlparse(u).query).get("since", [None])[0] for u in curve_urls]
        assert sinces[0] is None
        assert all(s is not None for s in sinces[1:])
        assert [int(s) for s in sinces[1:]] == sorted(int(s) for s in sinces[1:])
    finally:
        server.cancel_quietly(job["id"])
    server.wait_job(job["id"], {"cancelled"})


def test_cancel_from_the_page(page, server):
    job = server.submit_job(long_job("cancel me"))
    try:
        page.goto(f"{server.url}/#/jobs/{job['id']}")
        page.wait_for_selector("#job-title + span .pill[data-status='running']", timeout=60_000)
        page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) >= 1")
        page.click("#cancel-job")
        page.wait_for_selector(".pill[data-status='cancelled']", timeout=60_000)
        assert server.job(job["id"])["status"] == "cancelled"
        assert page.locator("#cancel-job").is_hidden()
        screenshot(page, "job-cancelled")
    finally:
        server.cancel_quietly(job["id"])


def test_finished_job_shows_boundary_and_downloads_its_model(page, server):
    spec = inline_job("two blobs")
    job = server.submit_job(spec)
    server.wait_job(job["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#boundary-chart .main-svg")
    assert page.get_attribute("#boundary-chart", "data-grid-points") == str(80 * 80)
    traces = page.eval_on_selector(
        "#boundary-chart", "el => el.data.map(t => t.type + ':' + (t.z ? t.z.length : t.x.length))"
    )
    # Inline data is stored as a dataset the spec names (issue 11); its points come from
    # GET /datasets/{id}/points and are drawn on the boundary again.
    assert traces == ["heatmap:80", f"scatter:{len(spec['dataset']['X'])}"]
    assert page.get_attribute("#boundary-chart", "data-points") == str(len(spec["dataset"]["X"]))
    assert f"all {len(spec['dataset']['X'])} rows" in page.text_content("#boundary-note")
    assert page.get_attribute("#loss-chart", "data-points") == str(spec["training"]["epochs"])
    page.check("#log-scale")
    assert page.eval_on_selector("#loss-chart", "el => el.layout.yaxis.type") == "log"
    page.uncheck("#log-scale")
    assert page.eval_on_selector("#loss-chart", "el => el.layout.yaxis.type") == "linear"
    spec_text = json.loads(page.text_content("#job-spec"))
    assert spec_text == server.job(job["id"])["spec"]
    screenshot(page, "job-succeeded")

    with page.expect_download() as download_info:
        page.click("#download-model")
    downloaded = json.loads(download_info.value.path().read_text())
    assert downloaded == server.api("GET", f"/jobs/{job['id']}/model").json()


def test_a_stored_datasets_boundary_draws_a_fixed_sample_of_its_points(page, server, problems):
    # 3000 rows in three classes, one of them rare: more than the chart draws (2000).
    X = [[(i % 60) / 20 - 1.5, (i // 60) / 20 - 1.25] for i in range(3000)]
    y = ["rare" if i % 500 == 0 else ("left" if row[0] < 0 else "right") for i, row in enumerate(X)]
    response = server.api("POST", "/datasets", json={"name": "grid", "X": X, "y": y})
    assert response.status_code == 201, response.text
    spec = quick_job("stored grid", epochs=3)
    spec["dataset"] = {"id": response.json()["id"]}
    job = server.submit_job(spec)
    server.wait_job(job["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#boundary-chart .main-svg")
    assert page.get_attribute("#boundary-chart", "data-points") == "2000"
    labels = page.eval_on_selector("#boundary-chart", "el => [...new Set(el.data[1].hovertext)]")
    assert sorted(labels) == ["class left", "class rare", "class right"]
    assert "a fixed sample of 2000 of its 3000 rows" in page.text_content("#boundary-note")

    # Deleted since (its job finished): the model still draws the boundary, alone.
    assert server.api("DELETE", f"/datasets/{spec['dataset']['id']}").status_code == 204
    page.reload()
    page.wait_for_selector("#boundary-chart .main-svg")
    assert page.eval_on_selector("#boundary-chart", "el => el.data.length") == 1
    assert "Its dataset was deleted" in page.text_content("#boundary-note")
    # The browser logs the two expected 404s (the dataset and its points) as console errors.
    expected = f"/datasets/{spec['dataset']['id']}"
    problems.console_errors[:] = [
        e for e in problems.console_errors if not ("404" in e and expected in e)
    ]


def test_a_name_with_markup_is_shown_as_text(page, server):
    name = "<img src=x onerror=alert(1)><b>bold</b>"
    job = server.submit_job(quick_job(name, epochs=3))
    server.wait_job(job["id"], {"succeeded", "failed"})
    page.goto(f"{server.url}/#/jobs")
    row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")
    row.wait_for()
    assert row.locator(".job-link").text_content() == name
    assert row.locator("img, b").count() == 0
    screenshot(page, "jobs")

    page.click(f"#jobs-table tr[data-job-id='{job['id']}'] .job-link")
    page.wait_for_function("document.querySelector('#job-title').textContent !== 'Loading…'")
    assert page.text_content("#job-title") == name
    assert page.locator("main img").count() == 0


def test_jobs_are_filtered_by_status(page, server):
    done = server.submit_job(quick_job("filter target", epochs=2))
    server.wait_job(done["id"], {"succeeded"})
    page.goto(f"{server.url}/#/jobs")
    page.wait_for_selector(f"tr[data-job-id='{done['id']}']")
    page.select_option("#status-filter", "succeeded")
    page.wait_for_url(re.compile(r".*#/jobs\?status=succeeded$"))
    page.wait_for_selector(f"tr[data-job-id='{done['id']}']")
    statuses = page.eval_on_selector_all(
        "#jobs-table tbody tr", "rows => rows.map(r => r.dataset.status)"
    )
    assert statuses
    assert set(statuses) == {"succeeded"}

    page.select_option("#status-filter", "failed")
    page.wait_for_url(re.compile(r".*status=failed$"))
    page.wait_for_function("!document.querySelector(\"tr[data-job-id='" + done["id"] + "']\")")
    statuses = page.eval_on_selector_all(
        "#jobs-table tbody tr", "rows => rows.map(r => r.dataset.status)"
    )
    assert set(statuses) <= {"failed"}


def test_a_job_submitted_from_the_form_trains(page, server):
    page.goto(f"{server.url}/#/jobs")
    page.click("#new-job-toggle")
    # The form offers the names the API declares (GET /meta), not a copy of its own.
    generators = [g["name"] for g in server.api("GET", "/meta").json()["generators"]]
    options = "select[name=generator] option"
    page.wait_for_function(f"document.querySelectorAll('{options}').length > 1")
    offered = page.eval_on_selector_all(options, "os => os.map(o => o.value)")
    assert offered == generators
    page.fill("input[name=name]", "from the form")
    page.select_option("select[name=generator]", "moons")
    page.fill("input[name=layers]", "8")
    page.fill("input[name=epochs]", "25")
    page.click("button:text('Submit job')")
    page.wait_for_url(re.compile(r".*#/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector(".pill[data-status='succeeded']", timeout=120_000)
    job = server.job(job_id)
    assert job["name"] == "from the form"
    assert job["spec"]["dataset"]["generator"] == "moons"
    assert job["spec"]["training"]["epochs"] == 25
    assert [layer["units"] for layer in job["spec"]["network"]["layers"]] == [8]
    page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) === 25")
    page.wait_for_selector("#boundary-chart .main-svg")
    screenshot(page, "job-from-form")


def test_a_failed_job_shows_its_error(page, server):
    diverging = {
        "name": "diverges",
        "network": {
            "layers": [{"units": 16, "activation": "relu"}],
            "output": {"activation": "identity"},
            "loss": "mse",
        },
        "dataset": {"generator": "plane", "n_samples": 100},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 500}, "epochs": 50},
    }
    job = server.submit_job(diverging)
    failed = server.wait_job(job["id"], {"failed", "succeeded"})
    assert failed["status"] == "failed"
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_selector("#job-error >> visible=true")
    assert page.text_content("#job-error .pill") == failed["error"]["type"]
    assert page.text_content("#job-error pre") == failed["error"]["message"]
    assert page.locator("#cancel-job").is_hidden()
    assert page.locator("#download-model").is_hidden()
    screenshot(page, "job-failed")


def test_a_long_history_is_downsampled_on_first_load(page, server):
    epochs = 5000
    job = server.submit_job(quick_job("long history", epochs=epochs))
    server.wait_job(job["id"], {"succeeded"}, timeout=300)
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) > 0")
    drawn = page.eval_on_selector("#loss-chart", "el => el.data[0].x")
    # First and last epoch kept, at most 2000 evenly spaced points in between.
    assert drawn[0] == 1
    assert drawn[-1] == epochs
    assert len(drawn) <= 2000
    assert drawn == sorted(set(drawn))
    assert page.text_content("#curve-count") == f"{epochs} epochs recorded, {len(drawn)} drawn"


def test_zooming_refetches_the_finer_range(page, server):
    """The chart asks for about one point per pixel of its width, and for the zoomed range
    again when zoomed; a reset draws the overview again."""
    epochs = 1500
    job = server.submit_job(quick_job("zoomable", epochs=epochs))
    server.wait_job(job["id"], {"succeeded"}, timeout=300)
    curve_path = f"/api/v1/jobs/{job['id']}/curve"
    asked: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda r: asked.append(parse_qs(urlparse(r.url).query)) if curve_path in r.url else None,
    )
    page.goto(f"{server.url}/#/jobs/{job['id']}")
    page.wait_for_function("Number(document.querySelector('#loss-chart').dataset.points) > 0")
    overview = page.eval_on_selector("#loss-chart", "el => el.data[0].x")
    width = page.eval_on_selector("#loss-chart", "el => el.clientWidth")
    max_points = int(asked[0]["max_points"][0])
    assert 100 <= max_points <= 2000
    assert abs(max_points - width) <= width // 2  # about one point per pixel
    assert (overview[0], overview[-1]) == (1, epochs)
    assert len(overview) <= max_points < epochs
    assert len([e for e in overview if 700 <= e <= 760]) < 61  # the overview is coarse there

    zoom = "el => Plotly.relayout(el, {'xaxis.range': [700, 760]})"
    page.eval_on_selector("#loss-chart", zoom)
    page.wait_for_function("document.querySelector('#loss-chart').data[0].x.length === 61")
    assert page.eval_on_selector("#loss-chart", "el => el.data[0].x") == list(range(700, 761))
    assert page.get_attribute("#loss-chart", "data-zoom") == "700-760"
    ranged = [q for q in asked if "from_epoch" in q]
    assert ranged
    assert (ranged[-1]["from_epoch"], ranged[-1]["to_epoch"]) == (["700"], ["760"])
    screenshot(page, "job-zoomed")

    page.eval_on_selector("#loss-chart", "el => Plotly.relayout(el, {'xaxis.autorange': true})")
    page.wait_for_function("document.querySelector('#loss-chart').dataset.zoom === ''")
    assert page.eval_on_selector("#loss-chart", "el => el.data[0].x") == overview


def test_the_jobs_page_shows_the_tenants_quota(page, server):
    page.goto(server.url + "/#/jobs")
    page.wait_for_selector("#quota [data-quota='storage']")
    text = " ".join(page.text_content("#quota").split())
    usage = server.api("GET", "/quota").json()["usage"]
    # No DELTAFLOW_QUOTA_* in this server's environment: every quota is unlimited.
    assert f"storage {usage['storage_bytes']} B / unlimited" in text or "KB / unlimited" in text
    assert re.search(r"queued \d+ / unlimited", text), text
    assert re.search(r"running \d+ / unlimited", text), text
