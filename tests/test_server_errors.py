"""The suite fails on any 500 a server logged (``support.server.SERVER_LOGS``), whether or not a
test looked at that answer: here in a pytest run of its own."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connector_telemetry.app import create_app
from connector_telemetry.settings import Settings
from support.server import SERVER_ERROR_MARKS, ServerLogs

INNER_TESTS = """
from pathlib import Path

import pytest

from support import SERVER_LOGS

LOG = "unexpected error on POST /client/v4/x (request 0123)\\nTraceback (most recent call last):\\n"


def test_a_500_in_a_log_fails_the_test(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    SERVER_LOGS.watch(log, truncate=True)
    log.write_text(LOG)  # as if a request the test retried had been answered 500


def test_a_clean_log_passes(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    SERVER_LOGS.watch(log, truncate=True)
    log.write_text("[INFO] Started worker-1\\nstore busy on POST /x: locked\\n")


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("shared") / "c.log"
    SERVER_LOGS.watch(log, truncate=True)
    yield
    log.write_text(LOG)  # while the last test's server stops


def test_with_a_shared_server(shared_server: None) -> None:
    pass
"""


def test_a_500_in_any_server_log_fails_the_run(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        timeout=120,
        check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "3 passed, 1 error" in out, out
    assert "ERROR at teardown of test_a_500_in_a_log_fails_the_test" in out, out
    assert "1 answer(s) 500 in server logs" in out and "request 0123" in out, out
    assert "answers 500 in server logs" in out, out  # the one logged after the last test


def test_the_marks_match_what_the_app_logs_for_a_500(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(db=str(tmp_path / "x.db")))
    try:
        with caplog.at_level(logging.ERROR, logger="connector_telemetry"):
            status, _, body = app._fail(RuntimeError("boom"), "POST", "/client/v4/x", None)
    finally:
        app.ctx.close()
    assert status == 500
    log = tmp_path / "server.log"
    logs = ServerLogs()
    logs.watch(log, truncate=True)
    log.write_text("[INFO] Started\n" + caplog.text)
    (found,) = logs.errors()
    assert "POST /client/v4/x" in found and "RuntimeError: boom" in found
    assert body.decode().split("request id ")[1][:32] in found
    assert any(mark.decode() in caplog.text for mark in SERVER_ERROR_MARKS)
    assert logs.errors() == []  # each 500 is reported once
    with open(log, "a") as more:
        more.write(caplog.text)
    assert len(logs.errors()) == 1
