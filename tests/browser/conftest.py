"""Browser tests: the real system (``deltaflow up``) driven by Debian's Chromium.

One embedded Deltaflow (SQLite + filesystem broker, API under gunicorn and a worker child)
runs for the whole session on a free port with a temporary data directory; every test
gets a fresh browser context whose console errors and page errors fail the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KEY_STORAGE = "deltaflow.apiKey"


def _deltaflow() -> str:
    script = Path(sys.executable).with_name("deltaflow")
    return str(script) if script.exists() else "deltaflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """The running system: its base URL, a tenant's key and an authenticated HTTP session."""

    url: str
    key: str
    http: requests.Session = field(repr=False)
    # The embedded system's data folder (its SQLite database), for tests that seed data
    # through the kernel; None for a system that was already running elsewhere.
    data_dir: Path | None = None
    tenant: str = "browser-tests"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, f"{self.url}/api/v1{path}", timeout=30, **kwargs)

    def submit_job(self, spec: dict) -> dict:
        response = self.api("POST", "/jobs", json=spec)
        assert response.status_code == 202, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        response = self.api("GET", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_job(self, job_id: str, statuses: set[str], timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} stuck in {job['status']}"
            time.sleep(0.2)

    def cancel_quietly(self, job_id: str) -> None:
        """Free the single worker for the next test (a finished job answers 409: fine)."""
        self.api("POST", f"/jobs/{job_id}/cancel")


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"deltaflow up exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"deltaflow up never became ready:\n{log.read_text()[-4000:]}")


def _session(key: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return http


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``deltaflow up`` on a free port; or, when DELTAFLOW_BROWSER_URL and
    DELTAFLOW_BROWSER_KEY are set, a system that is already running there."""
    running = os.environ.get("DELTAFLOW_BROWSER_URL")
    if running:
        key = os.environ["DELTAFLOW_BROWSER_KEY"]
        with _session(key) as http:
            yield Server(url=running.rstrip("/"), key=key, http=http)
        return
    data_dir = tmp_path_factory.mktemp("deltaflow")
    port = _free_port()
    env = {
        **os.environ,
        "DELTAFLOW_DATA_DIR": str(data_dir),
        # The embedded default, whatever the developer's shell points at.
        "DELTAFLOW_DATABASE_URL": "",
        "DELTAFLOW_BROKER_URL": "",
    }
    log = data_dir / "deltaflow-up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [_deltaflow(), "up", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        created = subprocess.run(
            [_deltaflow(), "create-key", "--tenant", Server.tenant],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        key = created.stdout.strip().splitlines()[-1].split()[-1]
        with _session(key) as http:
            yield Server(url=url, key=key, http=http, data_dir=data_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = (
            "chromium is not installed (apt-get install -y chromium): browser tests cannot run"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        print(f"\n*** SKIPPING BROWSER TESTS: {message} ***", file=sys.stderr)  # noqa: T201
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str):
    from playwright.sync_api import sync_playwright

    _predicates_as_functions()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _predicates_as_functions() -> None:
    """Poll bare expressions as arrow functions, so every page runs under the API's real CSP.

    Playwright polls a string predicate that is not a function by evaluating it with eval
    in the page, which the CSP (script-src 'self', no unsafe-eval) refuses; a function is
    called directly. ``"a > 1"`` becomes ``"() => (a > 1)"``; functions pass unchanged.
    """
    from playwright.sync_api import Page

    original = Page.wait_for_function
    if getattr(original, "wraps_expressions", False):
        return

    def wait_for_function(self, expression: str, *args, **kwargs):
        head = expression.lstrip()
        if not (head.startswith(("function", "async", "(")) or "=>" in head.split("\n", 1)[0]):
            expression = f"() => ({expression})"
        return original(self, expression, *args, **kwargs)

    wait_for_function.wraps_expressions = True  # type: ignore[attr-defined]
    Page.wait_for_function = wait_for_function  # type: ignore[method-assign]


@dataclass
class PageProblems:
    """Console errors, uncaught exceptions and dialogs seen by one page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs


def _watch(page, problems: PageProblems) -> None:
    def on_console(message) -> None:
        if message.type == "error":
            problems.console_errors.append(f"{message.text} @ {message.location}")

    def on_dialog(dialog) -> None:
        problems.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    page.on("dialog", on_dialog)


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def anonymous_page(browser, server: Server, problems: PageProblems):
    """A page in a fresh context with no API key stored: every test asserts no console errors."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = context.new_page()
    # Generous: the machine is shared, and a worker may still be starting its first job.
    page.set_default_timeout(60_000)
    _watch(page, problems)
    yield page
    context.close()
    problems.assert_clean()


@pytest.fixture
def page(anonymous_page, server: Server):
    """A page whose browser already holds the tenant's key (as if entered once before)."""
    anonymous_page.context.add_init_script(
        f"window.localStorage.setItem({json.dumps(KEY_STORAGE)}, {json.dumps(server.key)});"
    )
    return anonymous_page


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (git-ignored, kept by CI)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # The header is sticky: from the top, it is drawn once, where it belongs.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


def plotted_points(page, selector: str) -> list[int]:
    """Number of points in each trace Plotly actually drew in the chart at `selector`."""
    return page.eval_on_selector(selector, "el => (el.data || []).map(t => (t.x || []).length)")
