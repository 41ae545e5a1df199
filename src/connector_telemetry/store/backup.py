"""Online backups of a SQLite store, and their restore: ``backup(db, dest)`` and
``restore(source, db)``.

A backup is one pass of SQLite's online backup API in a single step (``pages=-1``): it
reads the whole database inside one read transaction, so the copy is the database as of
the moment that transaction began (every batch acknowledged before it, none half), while
the server goes on writing (WAL: readers and the writer do not block each other). Copying
page by page in several steps would restart whenever another process commits, and under
steady ingest might never finish. The copy is written beside its destination under a
temporary name, checked (``PRAGMA quick_check``, a ctel schema this ctel knows), synced,
then renamed: a destination either holds a whole backup or is untouched.

A restore copies a checked backup into the database file through SQLite (the backup API
again), so an existing database, its WAL included, is replaced in one transaction; the
server must be stopped meanwhile (a restore under a live server would swap the data under
its caches). PostgreSQL has its own tools (``pg_dump``, ``pg_basebackup``; see the
README): these functions refuse a PostgreSQL URL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from connector_telemetry.errors import ConfigError, ResourceError
from connector_telemetry.store import is_postgres
from connector_telemetry.store.base import SchemaTooNew
from connector_telemetry.store.sql import migrations

POSTGRES_ADVICE = (
    "ctel backup and restore copy SQLite stores; for PostgreSQL use pg_dump or "
    "pg_basebackup (README: Backups)"
)


@dataclass(frozen=True)
class Copied:
    path: str
    bytes: int
    seconds: float
    schema_version: int


def known_schema_version() -> int:
    return max(version for version, _ in migrations("sqlite"))


def backup(db: str, dest: str, *, force: bool = False) -> Copied:
    """Copy the SQLite store ``db`` (live or not) to the new file ``dest``."""
    if is_postgres(db):
        raise ConfigError(POSTGRES_ADVICE)
    if not os.path.isfile(db):
        raise ResourceError(f"{db}: no such database file")
    target = Path(dest)
    if target.exists() and not force:
        raise ResourceError(f"{dest} exists; choose another file, or pass --force to replace it")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=-1)
            version = _check(copy, dest)
        finally:
            copy.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    _sync(partial)
    os.replace(partial, target)
    _sync_dir(target.parent)
    return Copied(dest, target.stat().st_size, time.monotonic() - started, version)


def restore(source: str, db: str, *, force: bool = False) -> Copied:
    """Replace the SQLite store ``db`` (stopped) with the backup ``source``."""
    if is_postgres(db):
        raise ConfigError(POSTGRES_ADVICE)
    if not os.path.isfile(source):
        raise ResourceError(f"{source}: no such backup file")
    if os.path.exists(db) and os.path.getsize(db) > 0 and not force:
        raise ResourceError(
            f"{db} exists; stop the server that uses it and pass --force to replace it "
            "with the backup"
        )
    started = time.monotonic()
    backup_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        _check(backup_conn, source)
        target = sqlite3.connect(db, timeout=30)
        try:
            backup_conn.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=WAL")
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            version = _check(target, db)
        finally:
            target.close()
    finally:
        backup_conn.close()
    return Copied(db, os.path.getsize(db), time.monotonic() - started, version)


def _check(conn: sqlite3.Connection, name: str) -> int:
    """The copy is sound and a ctel database this ctel can serve; its schema version."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ResourceError(f"{name} is not a ctel database ({exc})") from None
    if problems != ["ok"]:
        raise ResourceError(f"{name} fails SQLite's quick_check: {'; '.join(problems[:3])}")
    version = int(row[0] or 0) if row else 0
    known = known_schema_version()
    if version > known:
        raise SchemaTooNew(
            f"{name} has schema version {version}, newer than this ctel knows ({known}); "
            "upgrade connector-telemetry"
        )
    return version


def _sync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
