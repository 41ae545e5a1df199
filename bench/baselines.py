"""The ingest baselines: the same items written in-process, without ctel, the
straightforward way (text ids, one JSON column, a composite primary key), 1000 rows (or
whatever the batch is) per transaction, into SQLite or PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT, CONNECTOR = "023e105f4ecef8ad9ca31a8372d0c353", "5b1d7a5f2c8e4a9b8f0e6d2c1a3b4c5d"

Row = tuple[Any, ...]
Batches = list[list[dict[str, Any]]]


@dataclass(frozen=True)
class Table:
    """One kind's straightforward table: its columns in each database's types, and
    the row of one item (serialized with the standard library's ``json.dumps``)."""

    name: str
    sqlite_columns: str
    postgres_columns: str
    row: Callable[[dict[str, Any]], Row]

    def sql(self, placeholder: str) -> str:
        columns = self.sqlite_columns.split("PRIMARY KEY")[0].rstrip(", ").split(",")
        return f"INSERT INTO {self.name} VALUES ({', '.join([placeholder] * len(columns))})"


def _event_row(ev: dict[str, Any]) -> Row:
    e = ev["e"]
    return (ACCOUNT, CONNECTOR, ev["t"], ev["n"], time.time(), e["k"], json.dumps(e), ev["v"])


def _snapshot_row(snap: dict[str, Any]) -> Row:
    return (ACCOUNT, CONNECTOR, snap["t"], time.time(), snap["v"], json.dumps(snap))


TABLES = {
    "events": Table(
        "events",
        "account_id TEXT, connector_id TEXT, t REAL, n REAL, a REAL, k TEXT, e TEXT, v TEXT, "
        "PRIMARY KEY (account_id, connector_id, t, n)",
        "account_id text, connector_id text, t float8, n float8, a float8, k text, e jsonb, "
        "v text, PRIMARY KEY (account_id, connector_id, t, n)",
        _event_row,
    ),
    "snapshots": Table(
        "snapshots",
        "account_id TEXT, connector_id TEXT, t REAL, a REAL, v TEXT, doc TEXT, "
        "PRIMARY KEY (account_id, connector_id, t)",
        "account_id text, connector_id text, t float8, a float8, v text, doc jsonb, "
        "PRIMARY KEY (account_id, connector_id, t)",
        _snapshot_row,
    ),
}


def _timed(batches: Batches, table: Table, write: Callable[[list[Row]], None]) -> float:
    """Rows/s of ``write`` (one transaction per batch), rows built inside the clock."""
    started = time.perf_counter()
    rows = 0
    for batch in batches:
        write([table.row(item) for item in batch])
        rows += len(batch)
    return rows / (time.perf_counter() - started)


def bare_sqlite(table: Table, batches: Batches, path: Path, wal: bool) -> float:
    """``executemany`` into a fresh file: with sqlite3's defaults (rollback journal,
    synchronous=FULL), or WAL with synchronous=FULL as our store runs."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"CREATE TABLE {table.name} ({table.sqlite_columns})")
    insert = table.sql("?")

    def write(rows: list[Row]) -> None:
        conn.execute("BEGIN")
        conn.executemany(insert, rows)
        conn.execute("COMMIT")

    try:
        return _timed(batches, table, write)
    finally:
        conn.close()


def bare_postgres(table: Table, batches: Batches, url: str, copy: bool) -> float:
    """psycopg into a fresh table: ``executemany`` (psycopg pipelines it), or (``copy``)
    ``COPY ... FROM STDIN`` row by row with ``write_row``; one transaction per batch."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table.name}")
        conn.execute(f"CREATE TABLE {table.name} ({table.postgres_columns})")
        insert = table.sql("%s")
        cur = conn.cursor()

        def write(rows: list[Row]) -> None:
            with conn.transaction():
                if copy:
                    with cur.copy(f"COPY {table.name} FROM STDIN") as stream:
                        for row in rows:
                            stream.write_row(row)
                else:
                    cur.executemany(insert, rows)

        return _timed(batches, table, write)
