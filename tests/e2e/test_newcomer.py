"""What a newcomer types after ``make run``, as they type it: the commands the banner, the
README and the Makefile give work from a shell whose PATH does not hold the venv, and the
key commands run from the wrong folder fail with one line, creating nothing."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.embedded import Embedded

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
DELTAFLOW = str(Path(sys.executable).with_name("deltaflow"))


def shell_env(data_dir: Path | None) -> dict[str, str]:
    """A newcomer's second shell: no DELTAFLOW_* settings, no venv on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DELTAFLOW_", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    if data_dir is not None:
        env["DELTAFLOW_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    data_dir = tmp_path / "var"
    env = {**shell_env(data_dir)}
    subprocess.run([DELTAFLOW, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    return data_dir


def banner(data_dir: Path, first_key: str | None) -> str:
    out = io.StringIO()
    Embedded(data_dir, "127.0.0.1", 8123, out=out)._banner(first_key)
    return out.getvalue()


@pytest.mark.integration
@pytest.mark.parametrize("first_key", [None, "dfk_shown"])
def test_the_banners_key_command_works_in_a_shell_without_the_venv(migrated, first_key):
    text = banner(migrated, first_key)
    command = re.search(r"(\S+) create-key --tenant NAME", text).group(1)
    result = subprocess.run(
        ["bash", "-c", f"{command} create-key --tenant acme"],
        cwd=ROOT,
        env=shell_env(migrated),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (text, result.stderr)
    assert re.fullmatch(r"dfk_\S+\n", result.stdout)


@pytest.mark.integration
def test_make_key_prints_a_key_alone_as_the_readme_uses_it(migrated):
    result = subprocess.run(
        ["bash", "-c", f'echo "Bearer $(make -s key TENANT=acme VENV={VENV})"'],
        cwd=ROOT,
        env=shell_env(migrated),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"Bearer dfk_\S+\n", result.stdout), result.stdout


def test_make_run_takes_a_port():
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8123", f"VENV={VENV}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"deltaflow up --demo .*--port 8123\b", result.stdout), result.stdout


@pytest.mark.parametrize("command", ["create-key --tenant acme", "list-keys", "revoke-key dfk_x"])
def test_key_commands_in_a_folder_without_a_database_fail_in_one_line(tmp_path, command):
    result = subprocess.run(
        [DELTAFLOW, *command.split()],
        cwd=tmp_path,
        env=shell_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in line
    assert str(tmp_path / "var") in line  # names the data folder it looked in
    assert "migrate" in line
    assert "DELTAFLOW_DATA_DIR" in line
    assert list(tmp_path.iterdir()) == []  # no stray ./var/deltaflow.sqlite3


def test_key_commands_on_an_empty_database_fail_in_one_line(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "deltaflow.sqlite3").touch()
    result = subprocess.run(
        [DELTAFLOW, "create-key", "--tenant", "acme"],
        cwd=tmp_path,
        env=shell_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "no such table" in line
    assert "migrate" in line


def test_deltaflow_hands_the_http_verbs_to_the_client(tmp_path):
    result = subprocess.run(
        [DELTAFLOW, "jobs", "list"],
        cwd=tmp_path,
        env=shell_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DELTAFLOW_URL" in result.stderr
    assert "DELTAFLOW_API_KEY" in result.stderr
    listed = subprocess.run([DELTAFLOW, "--help"], capture_output=True, text=True, timeout=60)
    assert re.search(r"\bjobs\b.*over HTTP", listed.stdout)


def test_the_swagger_header_speaks_to_the_apis_users(tmp_path):
    from service.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'db.sqlite3'}", "data_dir": tmp_path})
    info = app.test_client().get("/api/v1/openapi.json").get_json()["info"]
    assert info["title"] == "Deltaflow"
    assert "create_app" not in info["description"]
    assert "factory" not in info["description"]
    assert "Authorize" in info["description"]
    assert "make key TENANT=NAME" in info["description"]
    app.extensions["deltaflow"].engine.dispose()


def test_the_demo_is_long_enough_to_watch(monkeypatch):
    from service.embedded import demo_job

    monkeypatch.delenv("DELTAFLOW_DEMO_EPOCHS", raising=False)
    training, dataset = demo_job()["training"], demo_job()["dataset"]
    n_train = dataset["n_samples"] * (1 - dataset["validation_split"])
    steps = training["epochs"] * -(-n_train // training["batch_size"])
    # 1500 full-batch epochs (1500 steps) took 0.46 s; this is 25x as many steps.
    assert steps >= 25 * 1500
