"""The dashboard's pure helpers, run in the browser that runs the page (no Node needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def modules(page, server):
    page.goto(f"{server.url}/#/jobs")
    page.wait_for_selector("h1:text('Jobs')")
    return page


def run(page, module: str, body: str, arg=None):
    """Import /static/<module> in the page and evaluate `body` with it bound to `m`."""
    return page.evaluate(
        f"async (arg) => {{ const m = await import('/static/{module}'); {body} }}", arg
    )


def test_examples_parse_into_inputs_and_targets(modules):
    parsed = run(modules, "explain.js", "return m.parseExamples(arg);", "1, 2 | a\n 3 4 | 0 1\n\n")
    assert parsed == {"X": [[1, 2], [3, 4]], "y": ["a", [0, 1]]}
    error = run(
        modules,
        "explain.js",
        "try { m.parseExamples(arg); return null; } catch (e) { return e.message; }",
        "1, x | 0",
    )
    assert error == "line 1: inputs must be numbers"


def test_a_thinned_curve_keeps_its_ends_and_its_recent_quarter(modules):
    kept = run(
        modules,
        "curves.js",
        """const s = new m.CurveSeries();
           s.append(Array.from({length: 100}, (_, i) => ({epoch: i + 1, train_loss: i,
             grad_norms: {D: [i], update_ratio: [i]}})));
           const thinned = s.thin(80);
           return [thinned, s.epoch, s.train_loss.length, s.gradEpoch, s.gradD[0].length];""",
    )
    thinned, epochs, losses, grad_epochs, grad_values = kept
    assert thinned is True
    assert epochs[0] == 1
    assert epochs[-25:] == list(range(76, 101))
    assert epochs[:38] == list(range(1, 76, 2))
    assert losses == len(epochs) == grad_values
    assert grad_epochs == epochs


def test_repeated_points_are_not_appended_twice(modules):
    length = run(
        modules,
        "curves.js",
        """const s = new m.CurveSeries();
           s.append([{epoch: 1, train_loss: 1}, {epoch: 2, train_loss: 0.5}]);
           const added = s.append([{epoch: 2, train_loss: 0.5}, {epoch: 3, train_loss: 0.2}]);
           return [added, s.epoch];""",
    )
    assert length == [1, [1, 2, 3]]


def test_routes_parse_from_the_hash(modules):
    routes = run(
        modules,
        "router.js",
        "return arg.map((hash) => m.parseRoute(hash));",
        ["#/jobs?status=running", "#/jobs/abc", "#/batches/b1?metric=val_loss", "#/explain", "#/x"],
    )
    assert routes == [
        {"name": "jobs", "query": {"status": "running"}},
        {"name": "job", "id": "abc", "query": {}},
        {"name": "batch", "id": "b1", "query": {"metric": "val_loss"}},
        {"name": "explain", "query": {}},
        {"name": "unknown", "query": {}},
    ]


def test_names_with_markup_appear_literally_in_plotly_legends(modules):
    name = "<b>bold</b> & <a href='x'>link</a>"
    legend = run(
        modules,
        "charts.js",
        """const div = document.createElement('div');
           div.style.width = '400px';
           document.body.append(div);
           await m.draw(div, [m.line(m.plotlyText(arg), [1, 2], [1, 2], 'red')],
                        {showlegend: true});
           const text = div.querySelector('.legendtext');
           const result = [text.textContent, text.querySelectorAll('a').length,
                           text.innerHTML.includes('font-weight')];
           m.purge(div);
           div.remove();
           return result;""",
        name,
    )
    assert legend == [name, 0, False]
