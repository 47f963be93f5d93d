"""The README's shell examples, run as they stand against a live ``deltaflow up``.

Every ```sh block of "API by example" runs in one bash session, in a folder with the
project's Makefile (``make -s key`` as the README says), with a PATH that does not hold the
venv: a newcomer's second shell after ``make run``. The glue is small and stated here:
the README's port 8000 becomes the test's free port; ``curl`` is wrapped to record each
answer's status and to set the variables the README leaves to the reader ($DATASET_ID,
$JOB_ID, $BATCH_ID, $NEXT_CURSOR, $CURSOR) from the answers; ``<a job spec …>`` becomes
the grid example's base; ``iris.csv`` and ``mnist.npz`` are small stand-ins.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV = Path(sys.executable).parent.parent
DELTAFLOW = str(Path(sys.executable).with_name("deltaflow"))

# Sets the README's variables from each answer (stdin: the body; argv: curl's arguments).
GLUE = r"""
import json, shlex, sys
try:
    body = json.loads(sys.stdin.read())
except ValueError:
    sys.exit()
if not isinstance(body, dict):
    sys.exit()
found = {}
if "job_ids" in body:
    found["BATCH_ID"] = body["id"]
elif "sha256" in body and "n_features" in body:
    found["DATASET_ID"] = body["id"]
elif "progress" in body and "spec" in body:
    found["JOB_ID"] = body["id"]
if body.get("next_cursor"):
    found["CURSOR" if "/curves" in sys.argv[1] else "NEXT_CURSOR"] = body["next_cursor"]
for name, value in found.items():
    print(f"export {name}={shlex.quote(str(value))}")
"""

PRELUDE = r"""
curl() {
  local answer status body
  answer=$(command curl "$@" -w '\n@@status=%{http_code}')
  status=${answer##*@@status=}
  body=${answer%$'\n'@@status=*}
  printf '%s\n' "$body"
  local last=${*: -1}
  printf '%s %s\n' "$status" "${last%%$'\n'*}" >> "$CURL_LOG"
  eval "$(printf '%s' "$body" | python3 "$GLUE" "$*")"
}
"""


def readme_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## API by example", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def grid_base(blocks: list[str]) -> str:
    """The "base" of the README's grid example, as JSON text."""
    script = next(b for b in blocks if '"grid"' in b)
    body = script.split("-d '", 1)[1].split("}'", 1)[0] + "}"
    return json.dumps(json.loads(body)["base"])


def stand_ins(folder: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["sepal_length,sepal_width,target"]
    rows += [f"{a:.2f},{b:.2f},{'setosa' if a < 5.5 else 'virginica'}" for a, b in
             rng.normal(5.5, 0.8, size=(30, 2))]  # fmt: skip
    (folder / "iris.csv").write_text("\n".join(rows) + "\n")
    buffer = io.BytesIO()
    np.savez(buffer, X=rng.random((20, 4)).astype(np.float32), y=np.arange(20) % 2)
    (folder / "mnist.npz").write_bytes(buffer.getvalue())
    for name in ("Makefile", "pyproject.toml"):  # `make -s key` from this folder
        (folder / name).symlink_to(ROOT / name)


def test_the_readme_examples_run_against_a_live_service(tmp_path):
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DELTAFLOW_", "VIRTUAL_ENV"))}
    env["DELTAFLOW_DATA_DIR"] = str(data_dir)
    port = free_port()
    up = subprocess.Popen(
        [DELTAFLOW, "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert up.stdout is not None
        seen = ""
        while "Press Ctrl-C" not in seen:
            line = up.stdout.readline()
            assert line, f"deltaflow up ended early:\n{seen}"
            seen += line

        blocks = readme_blocks()
        assert len(blocks) >= 6
        base = grid_base(blocks)
        script = "\n".join(blocks)
        script = re.sub(r"<a job spec[^>]*>", base, script)
        script = script.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        work = tmp_path / "shell"
        work.mkdir()
        stand_ins(work)
        (work / "glue.py").write_text(GLUE)
        log = work / "statuses.log"
        shell_env = {
            **env,
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # not the venv's: make run does not add it
            "VENV": str(VENV),
            "CURL_LOG": str(log),
            "GLUE": str(work / "glue.py"),
        }
        result = subprocess.run(
            ["bash", "-c", PRELUDE + script],
            cwd=work,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        statuses = [line.split(" ", 1) for line in log.read_text().splitlines()]
        report = "\n".join(" ".join(s) for s in statuses) + "\n" + result.stderr[-2000:]
        curls = sum(block.count("curl ") for block in blocks)
        assert len(statuses) == curls, report
        codes = [int(code) for code, _ in statuses]
        # No connection failure, no refused key, no server error, no unknown id.
        assert not [c for c in codes if c in (0, 401, 404) or c >= 500], report
        assert {200, 201, 202, 422} <= set(codes), report
        assert codes.count(201) == 3, report  # the three dataset uploads
        assert codes.count(202) >= 5, report  # a job, three batches, a cancel
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()
