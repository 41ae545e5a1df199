"""Retention on PostgreSQL (issue 13): purging a month of N events by dropping its
partition (what ``PostgresStore.purge_telemetry`` does for a month entirely before the
cutoff) against the baseline, a batched ``DELETE`` of the same number of rows (the
statement purge uses in the month that straddles the cutoff, 5000 rows per transaction,
as ``service.retention`` runs it), same cluster, same run; plus the ``VACUUM`` the
deleted rows then cost, and the table's size left behind.

The two months are filled directly in SQL (``generate_series``: the store's own ingest
of 10M events would take minutes); each event is the row ingest would write (a ~50 byte
document)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from connector_telemetry.service.retention import BATCH
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.pg_partitions import bounds
from connector_telemetry.store.postgres import PostgresStore

#: The dropped month and the deleted one.
DROPPED, DELETED = (2024, 1), (2024, 3)


def _fill(conn: psycopg.Connection[Any], cpk: int, month: tuple[int, int], rows: int) -> None:
    lo, hi = bounds(*month)
    step = (hi - lo - 1) / rows
    conn.execute(
        "INSERT INTO events (cpk, t, n, a, k, doc) SELECT %s, t, 0, t, 'Init', "
        'convert_to(\'{"e":{"k":"Init"},"n":0,"t":\' || t::text || \'}\', \'UTF8\') '
        "FROM (SELECT %s + i * %s AS t FROM generate_series(0, %s - 1) AS i) AS s",
        (cpk, float(lo), step, rows),
    )


def run(url: str, rows: int) -> dict[str, Any]:
    """``url``: a new, empty database."""
    store = open_store(Settings(db=url))
    assert isinstance(store, PostgresStore)
    try:
        store.migrate()
        return _measure(store, url, rows)
    finally:
        store.close()


def _measure(store: PostgresStore, url: str, rows: int) -> dict[str, Any]:
    from connector_telemetry.service import connectors, credentials

    account = credentials.create_account(store)
    made, _ = connectors.create_connector(store, account, {"device": {"provision_license": True}})
    with psycopg.connect(url, autocommit=True) as conn:
        (cpk,) = conn.execute("SELECT pk FROM connectors WHERE id = %s", (made.id,)).fetchone() or (
            0,
        )
        started = time.perf_counter()
        for month in (DROPPED, DELETED):
            store._partitions.ensure(conn, "events", [float(bounds(*month)[0])])
            _fill(conn, cpk, month, rows)
        conn.execute("VACUUM ANALYZE events")
        built = time.perf_counter() - started
        print(f"  built 2 x {rows:,} events in {built:.0f} s", flush=True)
        size = _size(conn, "events_2024_03")

        started = time.perf_counter()
        dropped = store.purge_telemetry(float(bounds(*DROPPED)[1]), BATCH)
        drop_s = time.perf_counter() - started
        assert dropped == rows, (dropped, rows)

        # the baseline: the same number of rows deleted as purge deletes in a straddling
        # month, BATCH rows per transaction (autocommit: each statement its own)
        query = store.sql.purge_events
        cutoff = float(bounds(*DELETED)[1])
        deleted, statements = 0, 0
        started = time.perf_counter()
        while gone := conn.execute(query, (cutoff, cutoff, BATCH)).rowcount:
            deleted += gone
            statements += 1
        delete_s = time.perf_counter() - started
        assert deleted == rows, (deleted, rows)
        left = _size(conn, "events_2024_03")
        started = time.perf_counter()
        conn.execute("VACUUM events_2024_03")
        vacuum_s = time.perf_counter() - started
    return {
        "events_per_month": rows,
        "drop_partition_s": round(drop_s, 3),
        "batched_delete_s": round(delete_s, 2),
        "delete_statements": statements,
        "vacuum_after_delete_s": round(vacuum_s, 2),
        "ratio_delete_vs_drop": round(delete_s / drop_s, 1),
        "table_mb_before": size,
        "table_mb_after_delete": left,
        "build_s": round(built, 1),
    }


def _size(conn: psycopg.Connection[Any], table: str) -> float:
    row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
    return round(int(row[0] if row else 0) / 2**20, 1)
