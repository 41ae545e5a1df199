"""``ctel doctor``: every check on both stores, exit codes 0/1, text and JSON, and where
each setting came from (issue 12, sentence 7)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from connector_telemetry.testing import TemporaryPostgres
from support import fresh_db


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector_telemetry", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_healthy_sqlite_store(tmp_path: Path) -> None:
    db, _ = fresh_db(tmp_path)
    done = doctor("--db", db, env={"CTEL_PORT": "9999"})
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("store", "schema", "quick_check", "wal", "disk", "clock", "settings"):
        assert any(
            line.startswith("ok ") and f" {name} " in line for line in done.stdout.splitlines()
        ), name
    report = json.loads(doctor("--db", db, "--json", env={"CTEL_PORT": "9999"}).stdout)
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    settings = checks["settings"]["details"]
    assert settings["db"] == {"value": db, "from": "flag"}
    assert settings["port"] == {"value": 9999, "from": "environment"}
    assert settings["workers"] == {"value": 0, "from": "default"}
    assert checks["disk"]["details"]["free_bytes"] > 0
    assert checks["wal"]["details"]["journal_mode"] == "wal"


def test_problems_exit_1(tmp_path: Path) -> None:
    missing = doctor("--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and "BAD  store" in missing.stdout
    assert not (tmp_path / "none.db").exists()
    db, _ = fresh_db(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99)")
    newer = doctor("--db", db)
    assert newer.returncode == 1 and "newer than this ctel knows" in newer.stdout
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    bad = doctor("--db", str(junk), "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["ok"] is False
    assert "Traceback" not in bad.stderr


def test_postgresql(postgres_server: TemporaryPostgres, tmp_path: Path) -> None:
    url = postgres_server.new_database("ctel_doctor")
    db, _ = fresh_db(tmp_path, url)
    done = doctor("--db", db, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert {"store", "schema", "postgresql", "partitions", "pool", "clock_vs_postgresql"} <= set(
        checks
    )
    assert checks["partitions"]["details"]["wanted"]
    assert abs(checks["clock_vs_postgresql"]["details"]["skew_seconds"]) < 5
    if "@" in url and ":" in url.split("@")[0].split("//")[1]:
        assert url.split("//")[1].split("@")[0].split(":")[1] not in done.stdout


@pytest.mark.parametrize("flag", ["--json", ""])
def test_output_forms(tmp_path: Path, flag: str) -> None:
    db, _ = fresh_db(tmp_path)
    done = doctor("--db", db, *([flag] if flag else []))
    assert done.returncode == 0
    if flag:
        json.loads(done.stdout)
        before = subprocess.run(
            [sys.executable, "-m", "connector_telemetry", flag, "doctor", "--db", db],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert before.returncode == 0 and json.loads(before.stdout)["ok"] is True
    else:
        assert done.stdout.splitlines()[0].startswith("ok ")
