"""Retention on PostgreSQL (issue 13, sentence 4): months that lie entirely before the
cutoff are dropped whole (their partitions gone from the catalog), the month that
straddles it loses only its rows before the cutoff, in DELETEs of at most ``batch`` rows
that touch no other month, and later months are not touched at all (same table, same
rows)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from connector_telemetry.service import connectors, credentials, events, retention
from connector_telemetry.store.postgres import PostgresStore
from support.pg import sql

DAY = 86_400
JAN, FEB, MAR, APR = 1_704_067_200, 1_706_745_600, 1_709_251_200, 1_711_929_600  # 2024
CUTOFF = FEB + 10 * DAY  # inside February


def catalog(pg_url: str) -> dict[str, tuple[int, int, str]]:
    """Every partition of events and snapshots, from pg_inherits: name -> (oid,
    relfilenode, bounds). Same oid and relfilenode: the very same table, never rewritten."""
    rows = sql(
        pg_url,
        "SELECT c.relname, c.oid::int8, c.relfilenode::int8, pg_get_expr(c.relpartbound, c.oid) "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent IN ('events'::regclass, 'snapshots'::regclass)",
    )
    return {name: (oid, node, bound) for name, oid, node, bound in rows}


def contents(pg_url: str, part: str) -> list[tuple[Any, ...]]:
    return sql(pg_url, f"SELECT cpk, t, n, a, k, doc FROM {part} ORDER BY t, n")


def fill(store: PostgresStore) -> tuple[str, str, dict[str, int]]:
    """Events in January, February (both sides of the cutoff), March and April, plus one
    before 2000; returns the connector and how many events each month got."""
    account = credentials.create_account(store)
    made, _ = connectors.create_connector(store, account, {"device": {"provision_license": True}})
    times = {
        "events_2024_01": [JAN + i * 3600 for i in range(30)],
        "events_2024_02": [FEB + i * 3600 for i in range(17)]  # 17 before the cutoff
        + [CUTOFF, CUTOFF + 1]
        + [CUTOFF + DAY + i for i in range(5)],
        "events_2024_03": [MAR + i for i in range(12)],
        "events_2024_04": [APR + i for i in range(4)],
        "events_before_2000": [5.0],
    }
    for ts in times.values():
        body = orjson.dumps([{"e": {"k": "Init"}, "t": t, "n": 0} for t in ts])
        batch = events.parse_batch(body, "application/json", 100_000)
        assert events.record_events(store, account, made.id, batch).accepted == len(ts)
    return account, made.id, {name: len(ts) for name, ts in times.items()}


def scanned(pg_url: str, cutoff: float, batch: int) -> set[str]:
    """The partitions the purge's bounded DELETE reads or deletes from (its plan)."""
    query = PostgresStore.sql.purge_events.replace("%s", "{}").format(cutoff, cutoff, batch)
    plan = "\n".join(line for (line,) in sql(pg_url, "EXPLAIN (COSTS OFF) " + query))
    return {name for name in catalog(pg_url) if f" {name}" in plan}


def test_purge_drops_whole_months_and_deletes_in_batches_only_in_the_straddling_one(
    pg: PostgresStore, pg_url: str
) -> None:
    account, cid, counted = fill(pg)
    before = catalog(pg_url)
    assert {"events_2024_01", "events_2024_02", "events_2024_03", "events_2024_04"} <= set(before)
    later = {name: contents(pg_url, name) for name in ("events_2024_03", "events_2024_04")}
    straddling_kept = [row for row in contents(pg_url, "events_2024_02") if row[1] >= CUTOFF]
    assert len(straddling_kept) == 7

    # the bounded DELETE reads only the months the cutoff leaves rows in (and the catch-all
    # before 2000): never March or April
    assert scanned(pg_url, CUTOFF, 3) <= {"events_2024_01", "events_2024_02", "events_before_2000"}

    batch = 3
    first = pg.purge_telemetry(CUTOFF, batch)
    assert first == counted["events_2024_01"]  # January, dropped whole (counted), no DELETE
    after_drop = catalog(pg_url)
    assert "events_2024_01" not in after_drop  # gone from pg_inherits
    assert not sql(pg_url, "SELECT 1 FROM pg_class WHERE relname = 'events_2024_01'")  # dropped
    assert after_drop["events_2024_02"] == before["events_2024_02"]  # kept, same table
    assert scanned(pg_url, CUTOFF, batch) == {"events_2024_02", "events_before_2000"}

    steps = []
    while step := pg.purge_telemetry(CUTOFF, batch):
        steps.append(step)
    assert all(step <= batch for step in steps)  # bounded: batch rows per transaction at most
    assert sum(steps) == counted["events_2024_02"] - 7 + 1  # February's early ones, and t=5
    assert len(steps) == -(-sum(steps) // batch)

    after = catalog(pg_url)
    for name in ("events_2024_02", "events_2024_03", "events_2024_04"):
        assert after[name] == before[name]  # the same tables (oid, file, bounds)
    assert contents(pg_url, "events_2024_02") == straddling_kept  # only rows >= the cutoff
    for name, rows in later.items():
        assert contents(pg_url, name) == rows  # untouched
    assert contents(pg_url, "events_before_2000") == []
    left = [row[0] for row in pg.export_events(account, cid, None, 1000)]
    assert min(left) == CUTOFF and len(left) == 7 + 12 + 4


def test_retention_through_the_service(pg: PostgresStore, pg_url: str) -> None:
    """The retention job itself (``service.retention.purge``, as ``ctel purge`` and the
    server's timer run it): the same outcome, whatever the batch size."""
    _, _, counted = fill(pg)
    days = (time.time() - CUTOFF) / DAY
    gone = retention.purge(pg, days, pause=0)
    assert gone >= sum(counted.values()) - 7 - 12 - 4  # the clock moved on meanwhile
    names = set(catalog(pg_url))
    assert "events_2024_01" not in names
    assert {"events_2024_02", "events_2024_03", "events_2024_04"} <= names
    assert len(contents(pg_url, "events_2024_03")) == 12
