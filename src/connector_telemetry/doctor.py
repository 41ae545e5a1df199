"""``ctel doctor``: what an operator checks first, checked: ``diagnose(settings, sources)``.

Each check is a ``Check`` (name, ok, what was found); the command prints them as lines for
a person or, with ``--json``, as one document, and exits 0 when every check passed, 1 when
any failed. A check that only informs (a fact, not a verdict) always passes. Nothing is
written: SQLite is opened read-only, PostgreSQL read by plain queries.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector_telemetry.settings import SETTINGS, Settings
from connector_telemetry.store import describe, is_postgres, open_store

#: Free space below this, beside a SQLite database, fails the check.
LOW_DISK_BYTES = 1 << 30
#: A WAL above this points at a reader that keeps checkpoints from finishing.
BIG_WAL_BYTES = 256 << 20
#: Clock skew against PostgreSQL's above this fails (token expiry, collection times).
MAX_SKEW_SECONDS = 5.0


@dataclass
class Check:
    name: str
    ok: bool
    found: str
    details: dict[str, Any] = field(default_factory=dict)


def diagnose(settings: Settings, sources: dict[str, str]) -> list[Check]:
    checks: list[Check] = []

    def run(name: str, fn: Callable[[], Check | list[Check]]) -> None:
        try:
            got = fn()
        except Exception as exc:  # a check that cannot run is a failed check
            checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
            return
        checks.extend(got if isinstance(got, list) else [got])

    db = settings.db
    if not is_postgres(db) and not os.path.isfile(db):
        checks.append(Check("store", False, f"no SQLite database at {db} (nothing was created)"))
        checks.append(_settings(settings, sources))
        return checks
    run("store", lambda: _store(settings))
    if is_postgres(db):
        run("postgresql", lambda: _postgres(settings))
    else:
        run("sqlite", lambda: _sqlite(db))
        run("disk", lambda: _disk(db))
    run("clock", _clock)
    checks.append(_settings(settings, sources))
    return checks


def _store(settings: Settings) -> list[Check]:
    store = open_store(settings)
    try:
        store.ping()
        version, known = store.schema_version(), store.known_schema_version
    finally:
        store.close()
    if version == known:
        schema = Check("schema", True, f"version {version}, current")
    elif version < known:
        schema = Check(
            "schema", False, f"version {version}, this ctel needs {known}: run ctel db migrate"
        )
    else:
        schema = Check(
            "schema", False, f"version {version}, newer than this ctel knows ({known}): upgrade"
        )
    return [Check("store", True, f"{describe(settings.db)} answers"), schema]


def _sqlite(db: str) -> list[Check]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        started = time.monotonic()
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        took = time.monotonic() - started
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    wal = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
    return [
        Check(
            "quick_check",
            problems == ["ok"],
            f"ok in {took:.2f} s" if problems == ["ok"] else "; ".join(problems[:5]),
        ),
        Check(
            "wal",
            wal < BIG_WAL_BYTES,
            f"journal_mode {mode}, WAL {wal:,} bytes"
            + ("" if wal < BIG_WAL_BYTES else " (a long reader keeps checkpoints from finishing?)"),
            {"journal_mode": mode, "wal_bytes": wal},
        ),
    ]


def _disk(db: str) -> Check:
    folder = os.path.dirname(os.path.abspath(db))
    usage = shutil.disk_usage(folder)
    ok = usage.free >= LOW_DISK_BYTES
    return Check(
        "disk",
        ok,
        f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB beside {folder}"
        + ("" if ok else " (below 1 GB: ingest will answer 507 when it is full)"),
        {"free_bytes": usage.free, "total_bytes": usage.total},
    )


def _postgres(settings: Settings) -> list[Check]:
    import psycopg

    from connector_telemetry.store.pg_partitions import partition_name

    with psycopg.connect(settings.db, connect_timeout=5) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        db_now = conn.execute("SELECT extract(epoch FROM now())").fetchone()
        names = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            )
        }
    skew = time.time() - float(db_now[0]) if db_now else 0.0
    now = datetime.now(UTC)
    months = [(now.year, now.month), (now.year + now.month // 12, now.month % 12 + 1)]
    wanted = [partition_name(t, y, m) for t in ("events", "snapshots") for y, m in months]
    present = [n for n in wanted if n in names]
    return [
        Check("postgresql", True, f"server {version[0] if version else '?'}"),
        Check(
            "partitions",
            True,  # months are created on their first row: absence is not a fault
            f"{len(present)} of {len(wanted)} present for this and next month "
            f"({', '.join(present) or 'none yet'}); a month's partition is created with its "
            "first row",
            {"present": present, "wanted": wanted},
        ),
        Check(
            "pool",
            True,
            f"min {settings.pool_min_size}, max {settings.pool_max_size} write connections per "
            f"process, wait {settings.pool_timeout_seconds:g} s, statement timeout "
            f"{settings.statement_timeout_ms} ms",
        ),
        Check(
            "clock_vs_postgresql",
            abs(skew) <= MAX_SKEW_SECONDS,
            f"this host is {skew:+.3f} s from the database server",
            {"skew_seconds": round(skew, 3)},
        ),
    ]


def _clock() -> Check:
    now = time.time()
    ok = now > 1_700_000_000  # a clock reset to 1970 would stamp every record wrongly
    return Check(
        "clock",
        ok,
        datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        + ("" if ok else " (is the clock set?)"),
        {"epoch": round(now, 3)},
    )


def _settings(settings: Settings, sources: dict[str, str]) -> Check:
    values = {
        s.name: {"value": _shown(s.name, getattr(settings, s.name)), "from": sources[s.name]}
        for s in SETTINGS
    }
    changed = [
        f"{k}={v['value']} ({v['from']})" for k, v in values.items() if v["from"] != "default"
    ]
    return Check("settings", True, ", ".join(changed) or "all defaults", values)


def _shown(name: str, value: Any) -> Any:
    return describe(value) if name == "db" else value


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'ok ' if c.ok else 'BAD'}  {c.name:<{width}}  {c.found}" for c in checks]
    settings = next((c for c in checks if c.name == "settings"), None)
    if settings is not None:
        lines.append("")
        lines += [
            f"     {k:<28} {v['value']!s:<24} {v['from']}" for k, v in settings.details.items()
        ]
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
