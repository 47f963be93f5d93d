"""The client's pieces without a server: URLs, errors, progress lines, tables, frames."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from deltaflow_client import DeltaflowError, frames
from deltaflow_client.progress import Progress, batch_line, job_line
from deltaflow_client.tables import curve_csv, jobs_table, table
from deltaflow_client.transport import api_base

VALIDATION = {
    "type": "/problems/validation",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "cross_entropy needs a softmax output",
    "errors": [{"loc": ["body", "network", "loss"], "msg": "cross_entropy needs a softmax output"}],
}
RUNNING = {
    "id": "j1",
    "name": "spirals",
    "status": "running",
    "progress": {"epoch": 40, "epochs": 300, "fraction": 40 / 300, "eta_seconds": 12.4},
    "metrics": {"train_loss": 0.69314, "val_accuracy": 0.8125},
    "created_at": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123",
        "http://127.0.0.1:8123/",
        "http://127.0.0.1:8123/api/v1",
        " http://127.0.0.1:8123/api/v1/ ",
    ],
)
def test_the_server_root_and_the_api_base_are_the_same_url(url):
    assert api_base(url) == "http://127.0.0.1:8123/api/v1"


def test_a_url_without_a_scheme_is_refused():
    with pytest.raises(ValueError, match="not an http"):
        api_base("127.0.0.1:8123")


def test_the_error_carries_the_problem_and_reads_well():
    error = DeltaflowError(422, VALIDATION)
    assert (error.status, error.type, error.title) == (
        422,
        VALIDATION["type"],
        "Unprocessable Content",
    )
    assert error.detail == VALIDATION["detail"]
    assert error.errors == VALIDATION["errors"]
    assert error.problem == VALIDATION
    assert str(error) == (
        "422 Unprocessable Content: cross_entropy needs a softmax output\n"
        "  body.network.loss: cross_entropy needs a softmax output"
    )


def test_an_error_without_an_answer_has_no_status():
    error = DeltaflowError(None, {"title": "ConnectionError"}, detail="no answer")
    assert error.status is None
    assert str(error) == "no answer"


def test_the_progress_line_of_a_running_job():
    assert job_line(RUNNING) == (
        "[####..........................]  epoch 40/300  loss 0.6931  acc 0.812  eta 12s  running"
    )


def test_the_progress_line_of_a_batch():
    summary = {
        "progress": {"finished": 3, "total": 6, "fraction": 0.5},
        "counts": {"running": 2, "queued": 1, "succeeded": 3},
        "best": {"id": "j2", "value": 0.12345},
        "metric": "val_loss",
    }
    assert batch_line(summary) == (
        "[###############...............]  3/6 finished  running 2  queued 1"
        "  best 0.1235 (val_loss)"
    )


def test_on_a_terminal_the_bar_is_redrawn_in_place_elsewhere_one_line_per_status():
    frames_ = [("a", "queued"), ("bb", "running"), ("c", "running"), ("d", "succeeded")]
    terminal, log = io.StringIO(), io.StringIO()
    for stream, is_terminal in ((terminal, True), (log, False)):
        progress = Progress(stream, terminal=is_terminal)
        for line, status in frames_:
            progress.show(line, status)
        progress.close()
    assert terminal.getvalue() == "\ra\rbb\rc \rd\n"
    assert log.getvalue() == "a\nbb\nd\n"


def test_tables_align_columns_and_show_missing_values_as_dashes():
    text = table(["id", "loss"], [["a", 0.123456], ["bbbb", None]])
    assert text.splitlines() == ["ID    LOSS", "a     0.1235", "bbbb  -"]
    header, row = jobs_table([RUNNING]).splitlines()
    assert header.split() == [
        "ID", "NAME", "STATUS", "EPOCH", "TRAIN_LOSS", "VAL_LOSS", "TRAIN_ACCURACY",
        "VAL_ACCURACY", "CREATED_AT",
    ]  # fmt: skip
    assert row.split() == ["j1", "spirals", "running", "40/300", "0.6931", "-", "-", "0.8125",
                           "2026-01-01T00:00:00Z"]  # fmt: skip


def test_curve_csv_keeps_every_field_and_nested_values_as_json():
    points = [
        {"epoch": 1, "train_loss": 0.5, "val_loss": None, "grad_norms": {"D": [1.0, 2.0]}},
        {"epoch": 2, "train_loss": 0.25, "val_loss": None, "grad_norms": None},
    ]
    rows = list(csv.DictReader(io.StringIO(curve_csv(points))))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["grad_norms"] == '{"D":[1.0,2.0]}'
    assert rows[1]["val_loss"] == ""


def test_frames_without_pandas_say_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an absent pandas looks like
    with pytest.raises(ImportError, match="pip install pandas"):
        frames.curve_frame([{"epoch": 1, "train_loss": 0.5}])


def test_batch_rows_flatten_params_and_metrics():
    summary = {
        "jobs": [
            {
                "id": "j1", "index": 0, "name": "b-0", "status": "succeeded", "epoch": 40,
                "params": {"training.optimizer.learning_rate": 0.01},
                "metrics": {"train_loss": 0.3, "val_loss": 0.4, "val_accuracy": 0.9},
            }
        ]
    }  # fmt: skip
    (row,) = frames.batch_rows(summary)
    assert row == {
        "id": "j1", "index": 0, "name": "b-0", "status": "succeeded",
        "training.optimizer.learning_rate": 0.01, "epoch": 40,
        "train_loss": 0.3, "val_loss": 0.4, "train_accuracy": None, "val_accuracy": 0.9,
    }  # fmt: skip
    frame = frames.batch_frame(summary)
    assert list(frame.index) == ["j1"]
    assert frame.loc["j1", "training.optimizer.learning_rate"] == 0.01


def test_frames_of_nothing_keep_their_columns():
    empty = frames.batch_frame({"jobs": [], "varied": ["training.epochs"]})
    assert len(empty) == 0
    assert "training.epochs" in empty.columns
    assert empty.index.name == "id"
    curve = frames.curve_frame([])
    assert (len(curve), curve.index.name) == (0, "epoch")
    assert "train_loss" in curve.columns


def test_importing_the_client_loads_nothing_of_the_server():
    code = (
        "import sys, deltaflow_client, deltaflow_client.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'service', 'worker', 'flask', 'celery', 'sqlalchemy', 'numpy', 'pandas'})\n"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
