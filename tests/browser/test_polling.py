"""Polling is cheap: conditional requests answered 304, and nothing while the tab is hidden."""

from __future__ import annotations

import pytest

from .specs import long_job, quick_job

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Longer than the job page's longest back-off (10 s), so a poll would have happened.
HIDDEN_WINDOW_MS = 12_000

SET_VISIBILITY = """state => {
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_polling_is_conditional_and_pauses_while_hidden(page, server):
    # The embedded system has one worker slot: a long job keeps the next one queued, unchanged.
    blocker = server.submit_job(long_job("occupies the worker"))
    waiting = None
    try:
        server.wait_job(blocker["id"], {"running"})
        waiting = server.submit_job(quick_job("waits its turn", epochs=5))
        job_url = f"{server.url}/api/v1/jobs/{waiting['id']}"
        seen: list[tuple[int, str | None, str | None]] = []

        def on_response(response) -> None:
            if response.url == job_url:
                seen.append(
                    (
                        response.status,
                        response.request.headers.get("if-none-match"),
                        response.headers.get("etag"),
                    )
                )

        page.on("response", on_response)
        page.goto(f"{server.url}/#/jobs/{waiting['id']}")
        page.wait_for_selector(".pill[data-status='queued']")
        for _ in range(150):
            if sum(1 for status, _, _ in seen if status == 304) >= 2:
                break
            page.wait_for_timeout(200)
        statuses = [status for status, _, _ in seen]
        assert statuses[0] == 200
        assert statuses.count(304) >= 2, statuses
        first_etag = seen[0][2]
        assert first_etag
        assert all(sent == first_etag for _, sent, _ in seen[1:])

        page.evaluate(SET_VISIBILITY, "hidden")
        before = len(seen)
        page.wait_for_timeout(HIDDEN_WINDOW_MS)
        assert len(seen) == before, "no polling while the tab is hidden"

        with page.expect_response(job_url, timeout=5_000):
            page.evaluate(SET_VISIBILITY, "visible")
    finally:
        if waiting is not None:
            server.cancel_quietly(waiting["id"])
        server.cancel_quietly(blocker["id"])
    server.wait_job(blocker["id"], {"cancelled"})
