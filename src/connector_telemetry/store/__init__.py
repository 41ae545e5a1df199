"""Storage: ``open_store(settings)`` picks the implementation for ``settings.db``:
PostgreSQL for a ``postgresql://`` (or ``postgres://``) URL, else a SQLite file."""

from __future__ import annotations

import re

from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD = re.compile(r"(://[^/@:]*):[^/@]*@")
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&]*")


def is_postgres(db: str) -> bool:
    return db.startswith(POSTGRES_SCHEMES)


def describe(db: str) -> str:
    """``db`` as it may be printed or logged: a URL's password is masked."""
    if not is_postgres(db):
        return db
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD.sub(r"\1:***@", db))


def open_store(settings: Settings) -> Store:
    if is_postgres(settings.db):
        from connector_telemetry.store.postgres import PostgresStore

        return PostgresStore(
            settings.db,
            pool_min_size=settings.pool_min_size,
            pool_max_size=settings.pool_max_size,
            pool_timeout_seconds=settings.pool_timeout_seconds,
            statement_timeout_ms=settings.statement_timeout_ms,
            read_connections=settings.read_connections,
            read_pipeline=settings.read_pipeline,
        )
    from connector_telemetry.store.sqlite import SQLiteStore

    # A test-mode server (issue 11) writes a journal line per request: its commits skip
    # the fsync (WAL's NORMAL: still consistent, only the last commits may be lost on a
    # power cut, which a test database can afford); measured, it doubles its throughput.
    # Nor does it zero what it deletes (Debian builds SQLite with SECURE_DELETE on): a reset
    # of 3 simulated connectors' day (~9 MB of snapshots) took ~70 ms, with FAST ~7 ms.
    return SQLiteStore(
        settings.db,
        busy_timeout_ms=settings.busy_timeout_ms,
        synchronous="NORMAL" if settings.test_mode else "FULL",
        secure_delete="FAST" if settings.test_mode else None,
    )
