"""``deltaflow create-key``, ``list-keys`` and ``revoke-key`` as an operator runs them, on
the configured database, and what the API then answers."""

from __future__ import annotations

import dataclasses

import pytest

from service.app import create_app
from service.cli import main

JOBS = "/api/v1/jobs"


@pytest.fixture
def cli(settings, monkeypatch, capsys):  # type: ignore[no-untyped-def]
    """``cli(*args) -> (exit code, stdout, stderr)`` on the test's database."""
    monkeypatch.setenv("DELTAFLOW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DELTAFLOW_DATA_DIR", str(settings.data_dir))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def uncached_client(settings):  # type: ignore[no-untyped-def]
    app = create_app({"settings": dataclasses.replace(settings, auth_cache_seconds=0.0)})
    yield app.test_client()
    app.extensions["deltaflow"].engine.dispose()


def test_create_list_revoke(cli, uncached_client):
    code, out, _ = cli("create-key", "--tenant", "acme", "--name", "laptop", "--expires-in", "30")
    key = out.strip()
    assert code == 0
    assert out == key + "\n"
    assert key.startswith("dfk_")
    assert uncached_client.get(JOBS, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    cli("create-key", "--tenant", "globex")

    code, out, _ = cli("list-keys")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["prefix", "tenant", "name", "created", "expires", "last", "used",
                                "revoked"]  # fmt: skip
    acme = next(line for line in lines if "acme" in line).split()
    assert acme[:3] == [key[:12], "acme", "laptop"]
    assert acme[3].endswith("Z")
    assert acme[4].endswith("Z")
    assert acme[5].endswith("Z")  # last used: the request above
    assert acme[6] == "-"  # not revoked
    assert key not in out
    code, out, _ = cli("list-keys", "--tenant", "acme")
    assert len(out.splitlines()) == 2

    code, _, err = cli("revoke-key", key[:12])
    assert code == 0
    assert "within" in err
    assert uncached_client.get(JOBS, headers={"Authorization": f"Bearer {key}"}).status_code == 401
    code, out, _ = cli("list-keys", "--tenant", "acme")
    assert out.splitlines()[1].split()[-1].endswith("Z")  # revoked at


def test_revoke_key_refuses_what_names_no_key(cli):
    code, _, err = cli("revoke-key", "dfk_nothing")
    assert code == 1
    assert "no key has the prefix" in err


@pytest.mark.parametrize("days", ["0", "-1", "abc", "1e9"])
def test_create_key_refuses_a_bad_expiry(cli, days):
    with pytest.raises(SystemExit) as exit_info:
        cli("create-key", "--tenant", "acme", "--expires-in", days)
    assert exit_info.value.code == 2
