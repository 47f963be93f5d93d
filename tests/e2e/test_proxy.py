"""nginx in front of the API (docker-compose.yml, deploy/nginx.conf), tested without Docker.

The compose file and the config are read for what they must say (the official image, the
body limit equal to the API's, timeouts, buffering, no credential in the access log);
then Debian's nginx (``make test`` installs it, like Chromium) checks the config with
``nginx -t`` and runs it for real in front of a real ``deltaflow api``: a body over the
limit is refused before the API sees it, and slow clients are held by nginx.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from service.config import Limits, Settings
from service.db import transaction
from service.tenants import create_tenant_key
from tests.support.apiserver import ApiServer
from tests.support.fixtures import unavailable
from tests.support.servers import free_port
from tests.support.trickle import Trickler, post_too_large, probe_status

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
SIZES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def directives(text: str) -> dict[str, list[str]]:
    """Every ``name value;`` of the config (comments dropped), by name."""
    found: dict[str, list[str]] = {}
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for statement in body.replace("{", ";").replace("}", ";").split(";"):
        words = statement.split(None, 1)
        if words:
            found.setdefault(words[0], []).append(words[1].strip() if len(words) > 1 else "")
    return found


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * SIZES[unit]


# --- what the files say ------------------------------------------------------------------------


def test_compose_puts_the_official_nginx_in_front_of_the_api():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    proxy, api = services["proxy"], services["api"]
    assert re.fullmatch(r"nginx:[\w.-]+", proxy["image"])  # the official image
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert proxy["ports"] == ["8000:80"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert "ports" not in api  # reachable only through the proxy
    assert api["expose"] == ["8000"]
    assert "server api:8000;" in NGINX_CONF.read_text()


def test_the_nginx_config_caps_times_out_and_buffers():
    found = directives(NGINX_CONF.read_text())
    assert [size(v) for v in found["client_max_body_size"]] == [Limits().body_bytes]
    for name in ("client_body_timeout", "client_header_timeout", "send_timeout"):
        assert len(found[name]) == 1
        assert re.fullmatch(r"\d+s", found[name][0])
    assert found["proxy_request_buffering"] == ["on"]
    assert found["proxy_buffering"] == ["on"]
    assert found["limit_conn"] == ["deltaflow_per_address 100"]
    # The access log's format holds no user field: Basic credentials would be a key.
    assert "remote_user" not in NGINX_CONF.read_text().split("log_format", 1)[1].split(";")[0]
    assert found["access_log"] == ["/var/log/nginx/access.log deltaflow"]
    # The API's own deadline answers first (503 problem+json), not nginx's read timeout.
    assert int(found["proxy_read_timeout"][0].rstrip("s")) > Settings().request_timeout_seconds
    assert "502 504 =503 @unavailable" in found["error_page"]


# --- the real nginx ---------------------------------------------------------------------------


class Nginx:
    """Debian's nginx running deploy/nginx.conf in the foreground, pointed at ``upstream``."""

    def __init__(self, folder: Path, upstream: int) -> None:
        binary = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
        if binary is None:
            unavailable("nginx is not installed (Debian: apt-get install nginx; make test does)")
        self.binary = str(binary)
        self.folder = folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # nginx's workers run as nobody when the tests run as root
        site = NGINX_CONF.read_text()
        site = self._replace(site, "server api:8000;", f"server 127.0.0.1:{upstream};")
        site = self._replace(site, "listen 80;", f"listen 127.0.0.1:{self.port};")
        site = self._replace(
            site, "access_log /var/log/nginx/access.log", f"access_log {folder}/access.log"
        )
        (folder / "site.conf").write_text(site)
        temps = "\n".join(
            f"    {kind}_temp_path {folder}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (folder / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\n"
            f"error_log {folder}/error.log warn;\nevents {{ worker_connections 512; }}\n"
            f"http {{\n{temps}\n    include {folder}/site.conf;\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _replace(text: str, old: str, new: str) -> str:
        assert text.count(old) == 1, f"deploy/nginx.conf should say {old!r} once"
        return text.replace(old, new)

    def command(self, *args: str) -> list[str]:
        return [self.binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"), *args]

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> Nginx:
        with (self.folder / "stderr.log").open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.process.poll() is None, (self.folder / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # fast shutdown of master and workers
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def proxied(embedded_backend, tmp_path_factory):
    """A real ``deltaflow api`` on the embedded backend, nginx in front; a key and a job."""
    folder = tmp_path_factory.mktemp("proxy")
    with transaction(embedded_backend.factory) as session:
        key = create_tenant_key(session, "proxied")
    api = ApiServer(embedded_backend.env(), folder / "api.log").start()
    nginx = Nginx(folder / "nginx", api.port)
    try:
        checked = nginx.check()
        assert checked.returncode == 0, checked.stderr
        yield nginx.start(), api, key
    finally:
        nginx.stop()
        api.stop()


@pytest.mark.integration
def test_nginx_serves_the_api_and_refuses_an_oversized_body_itself(proxied):
    nginx, api, key = proxied
    auth = {"Authorization": f"Bearer {key}"}
    assert probe_status("127.0.0.1", nginx.port, "/healthz", {}, timeout=10)[0] == 200
    assert probe_status("127.0.0.1", nginx.port, "/api/v1/jobs", auth, timeout=10)[0] == 200
    assert probe_status("127.0.0.1", nginx.port, "/api/v1/jobs", {}, timeout=10)[0] == 401

    api_lines = api.log().count("POST /api/v1/jobs")
    status, head, problem = post_too_large("127.0.0.1", nginx.port, key, Limits().body_bytes + 1)
    assert status == 413  # at once, from the headers alone
    assert b"Content-Type: application/problem+json" in head
    assert problem["status"] == 413
    assert str(Limits().body_bytes) in problem["detail"]
    assert api.log().count("POST /api/v1/jobs") == api_lines  # the API never saw it


@pytest.mark.integration
@pytest.mark.slow
def test_nginx_holds_slow_clients_away_from_the_api(proxied):
    nginx, _api, key = proxied
    auth = {"Authorization": f"Bearer {key}"}
    tricklers = [
        Trickler("127.0.0.1", nginx.port, "/api/v1/jobs", auth, body_bytes=6, interval=1.0)
        for _ in range(10)
    ]
    for trickler in tricklers:
        trickler.start()
    try:
        while not all(t.sent >= 1 for t in tricklers):
            time.sleep(0.05)
        for path, headers in (("/healthz", {}), ("/api/v1/jobs", auth)):
            status, _ = probe_status("127.0.0.1", nginx.port, path, headers, timeout=6)
            assert status == 200
            assert all(t.sending and t.sent < t.total for t in tricklers)
    finally:
        for trickler in tricklers:
            trickler.join(timeout=40)
    assert [t.status for t in tricklers] == [422] * 10


@pytest.mark.integration
def test_nginx_answers_problem_json_when_the_api_does_not(tmp_path):
    """The API down (nginx's 502) is 503 problem+json with Retry-After, never nginx's HTML."""
    nginx = Nginx(tmp_path / "nginx", upstream=free_port())  # nothing listens there
    checked = nginx.check()
    assert checked.returncode == 0, checked.stderr
    nginx.start()
    try:
        answer = requests.get(f"http://127.0.0.1:{nginx.port}/api/v1/jobs", timeout=10)
    finally:
        nginx.stop()
    assert answer.status_code == 503
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["type"] == "/problems/unavailable"
