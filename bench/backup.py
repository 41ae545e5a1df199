"""``ctel backup``, timed: seconds per GB of an online copy of a SQLite store, against a
plain file copy (read, write, fsync) of the same database in the same run
(``python -m bench --only backup``). The copy is taken of an idle store; under ingest the
backup reads the same pages inside one read transaction (tests/reliability/test_backups.py
proves its consistency)."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from connector_telemetry.store.backup import backup


def _plain_copy(src: str, dest: Path) -> None:
    shutil.copyfile(src, dest)
    with open(dest, "rb") as f:
        os.fsync(f.fileno())


def run(db: str, scratch: Path, rounds: int) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    size = os.path.getsize(db)
    gb = size / 1e9
    ours, plain = [], []
    for i in range(rounds):  # alternating, so both see the same page cache and load
        target = scratch / f"backup-{i}.db"
        started = time.perf_counter()
        backup(db, str(target))
        ours.append(time.perf_counter() - started)
        target.unlink()
        started = time.perf_counter()
        _plain_copy(db, target)
        plain.append(time.perf_counter() - started)
        target.unlink()
    backup_s, copy_s = statistics.median(ours), statistics.median(plain)
    return {
        "database_bytes": size,
        "backup_seconds_per_gb": round(backup_s / gb, 2),
        "copy_seconds_per_gb": round(copy_s / gb, 2),
        "ratio": round(backup_s / copy_s, 2),
        "rounds": rounds,
    }
