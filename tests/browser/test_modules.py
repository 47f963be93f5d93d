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


POLLER_RUN = """async (outcomes) => {
  const m = await import('/static/poll.js');
  const times = [];
  let call = 0;
  const start = Date.now();
  const poller = new m.Poller(async () => {
    times.push(Date.now() - start);
    return outcomes[Math.min(call++, outcomes.length - 1)];
  }, {minDelay: 1000, maxDelay: 8000, factor: 2});
  window.__poller = {poller, times};
  poller.start();
  return times.length;
}"""


START = 1_800_000_000_000  # any fixed instant (ms since the epoch)


@pytest.fixture
def clocked(page, server):
    """A page whose timers run only when the test advances Playwright's fake clock."""
    page.clock.install(time=START)
    page.goto(f"{server.url}/#/explain")
    page.wait_for_selector("#gradient-card")
    # From here on, time moves only when the test runs the clock.
    page.clock.pause_at(START + 60_000)
    return page


def poll_times(page) -> list[int]:
    return page.evaluate("window.__poller.times")


def test_the_poller_backs_off_while_nothing_changes_and_resets_on_change(clocked):
    outcomes = ["unchanged"] * 5 + ["changed", "unchanged", "unchanged"]
    clocked.evaluate(POLLER_RUN, outcomes)
    clocked.clock.run_for(33_500)
    clocked.evaluate("window.__poller.poller.stop()")
    times = poll_times(clocked)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # On the fake clock: the gap doubles up to the cap while nothing changes; a change resets it.
    assert gaps == [2000, 4000, 8000, 8000, 8000, 1000, 2000]


def test_the_poller_sleeps_while_the_tab_is_hidden(clocked):
    clocked.evaluate(POLLER_RUN, ["unchanged"])
    clocked.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState',
                     {configurable: true, get: () => 'hidden'});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    clocked.clock.run_for(60_000)
    assert poll_times(clocked) == [0]
    clocked.evaluate(
        """() => { Object.defineProperty(document, 'visibilityState',
                     {configurable: true, get: () => 'visible'});
                   document.dispatchEvent(new Event('visibilitychange')); }"""
    )
    clocked.evaluate("window.__poller.poller.stop()")
    # Visible again: one poll at once (with the back-off reset), none while hidden.
    assert poll_times(clocked) == [0, 60_000]
