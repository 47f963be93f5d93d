"""What docker-compose.yml, the Dockerfile and the README promise, checked without Docker.

There is no Docker engine here, so these tests check that every container runs a real
``deltaflow`` subcommand with arguments the CLI accepts, that its environment means
something to ``Settings``, and that the README documents every setting.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.cli import build_parser
from service.config import ENV_PREFIX, Limits, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DELTAFLOW_SERVICES = ["migrate", "api", "worker"]
SETTING_VARIABLES = {
    ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings) if f.name != "limits"
}
LIMIT_VARIABLES = {ENV_PREFIX + "MAX_" + f.name.upper() for f in dataclasses.fields(Limits)}


def test_compose_has_the_production_shape():
    default = {name for name, service in SERVICES.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", "migrate", "api", "proxy", "worker"}
    redis_command = SERVICES["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize("name", DELTAFLOW_SERVICES)
def test_each_container_runs_a_real_deltaflow_subcommand(name):
    command = SERVICES[name]["command"]
    assert command[0] == "deltaflow"
    args = build_parser().parse_args(command[1:])  # exits (fails the test) if not accepted
    assert args.command == name


@pytest.mark.parametrize("name", DELTAFLOW_SERVICES)
def test_each_container_is_configured_for_postgres_and_redis(name):
    environment = SERVICES[name]["environment"]
    assert set(environment) <= SETTING_VARIABLES | LIMIT_VARIABLES
    settings = Settings.from_env(env=environment)
    database = urlsplit(settings.database_url)
    broker = urlsplit(settings.broker_url)
    assert database.scheme == "postgresql+psycopg"
    assert database.hostname == "postgres"
    assert database.port == 5432
    assert database.path.lstrip("/") == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert database.username == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert (broker.scheme, broker.hostname) == ("redis", "redis")


def test_all_deltaflow_containers_share_one_image():
    builds = {
        (str(SERVICES[name]["build"]), SERVICES[name]["image"]) for name in DELTAFLOW_SERVICES
    }
    assert len(builds) == 1
    ((context, _image),) = builds
    assert (ROOT / context / "Dockerfile").is_file()


def test_migrations_run_once_before_the_api_and_the_workers():
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        condition = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_workers_can_be_scaled_and_shut_down_warmly():
    worker = SERVICES["worker"]
    assert "container_name" not in worker  # --scale worker=N needs generated names
    assert "ports" not in worker
    # Each replica its own hostname (the container id): lease owners are hostname:pid,
    # and every replica's pool children have the same pids.
    assert "hostname" not in worker
    assert worker["stop_signal"] == "SIGTERM"  # warm shutdown: checkpoint and release


def test_the_dockerfile_ships_everything_the_package_needs():
    text = (ROOT / "Dockerfile").read_text()
    copied = set()
    for line in text.splitlines():
        if line.startswith("COPY "):
            copied.update(part.rstrip("/").removeprefix("./") for part in shlex.split(line)[1:-1])
    packages = {"service", "worker", "deltaflow_client"}
    assert {"pyproject.toml", "migrations", "alembic.ini", *packages} <= copied
    assert re.search(r"pip install -e \.", text)  # migrations are read from the source tree
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE).group(1)
    assert '"deltaflow"' in cmd
    # The dashboard's Plotly bundle: npm installs it by the lock file in a build stage, and
    # node_modules/ lands beside service/, where service.dashboard looks for it.
    assert re.search(r"^COPY package\.json package-lock\.json \./$", text, re.MULTILINE)
    assert re.search(r"^RUN npm ci\b", text, re.MULTILINE)
    assert re.search(r"^COPY --from=\w+ \S+/node_modules \./node_modules$", text, re.MULTILINE)


def test_the_readme_documents_every_setting_and_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(DELTAFLOW_[A-Z_]+)`", readme))
    assert SETTING_VARIABLES | LIMIT_VARIABLES <= documented
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_make_run_starts_deltaflow_up_with_the_demo():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    # `make run PORT=8080` chooses the port; the defaults are the README's address.
    assert recipe.strip().splitlines()[-1].strip() == (
        "$(BIN)/deltaflow up --demo --host $(HOST) --port $(PORT)"
    )
    assert "\nPORT ?= 8000\n" in makefile
    assert "\nHOST ?= 127.0.0.1\n" in makefile
