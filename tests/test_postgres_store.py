"""What only the PostgreSQL store has: migrations on a shared server, month partitions
and their purge, several writers (processes, servers) on one database, reconnects.

The API behaviour itself is checked by the whole API suite, which runs on both stores
(see the ``live`` fixture in conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from connector_telemetry.app import create_app
from connector_telemetry.errors import Conflict, NotFound
from connector_telemetry.failures import explain
from connector_telemetry.models import FeedFilter, IngestResult
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.settings import Settings
from connector_telemetry.store import describe, open_store
from connector_telemetry.store.base import SchemaTooNew
from connector_telemetry.store.pg_partitions import MONTHS_FROM, MONTHS_TO
from connector_telemetry.store.postgres import PostgresStore
from connector_telemetry.store.sql import migrations
from connector_telemetry.store.sqlite import SQLiteStore
from support import LiveServer, free_port, make_tenant, start_server, stop_server
from support.feed import SNAPSHOT, check_reads, fill_feed, read_feed
from support.pg import sql

JAN, FEB, MAR = 1_704_067_200, 1_706_745_600, 1_709_251_200  # 2024-01-01, -02-01, -03-01


def partitions(pg_url: str, table: str) -> list[str]:
    rows = sql(
        pg_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY 1",
        table,
    )
    return [name for (name,) in rows]


def connector(store: PostgresStore) -> tuple[str, str]:
    account = credentials.create_account(store)
    made, _ = connectors.create_connector(store, account, {"device": {"provision_license": True}})
    return account, made.id


def record(store: PostgresStore, account: str, cid: str, items: list[dict[str, Any]]) -> Any:
    batch = events.parse_batch(orjson.dumps(items), "application/json", 100_000)
    return events.record_events(store, account, cid, batch)


def record_snapshots(store: PostgresStore, account: str, cid: str, ts: list[float]) -> Any:
    body = orjson.dumps([{**SNAPSHOT, "t": t} for t in ts])
    return snapshots.record_snapshots(
        store, account, cid, snapshots.parse_batch(body, "application/json", 1000)
    )


# -- migrations -----------------------------------------------------------------------


SCHEMA_VERSION = PostgresStore.known_schema_version


def test_both_stores_have_the_same_schema_versions() -> None:
    """Schema N means the same thing on both stores."""
    versions = {kind: [v for v, _ in migrations(kind)] for kind in ("sqlite", "postgres")}
    assert versions["sqlite"] == versions["postgres"] == list(range(1, SCHEMA_VERSION + 1))
    assert SQLiteStore.known_schema_version == SCHEMA_VERSION


def test_migrations_apply_from_zero_and_only_once(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        assert store.schema_version() == 0
        assert store.migrate() == SCHEMA_VERSION == store.known_schema_version
        assert store.migrate() == SCHEMA_VERSION  # nothing left to do
        versions = sql(pg_url, "SELECT version FROM schema_version ORDER BY 1")
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
        assert partitions(pg_url, "events") == ["events_before_2000", "events_from_2100"]
        assert partitions(pg_url, "snapshots") == ["snapshots_before_2000", "snapshots_from_2100"]
        assert store.is_empty()
    finally:
        store.close()


def test_an_older_schema_is_migrated_with_its_data(pg_url: str) -> None:
    """A database left at schema 1 by an older ctel: `ctel db migrate` brings it up."""
    sql(pg_url, migrations("postgres")[0][1])
    sql(pg_url, "CREATE TABLE schema_version (version integer NOT NULL)")
    sql(pg_url, "INSERT INTO schema_version VALUES (1)")
    sql(pg_url, "INSERT INTO accounts VALUES ('old', 'Old account', '2024-01-01T00:00:00Z')")
    done = subprocess.run(
        [sys.executable, "-m", "connector_telemetry", "db", "migrate", "--db", pg_url],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"schema is at version {SCHEMA_VERSION}" in done.stderr
    store = PostgresStore(pg_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.account_exists("old")
        account, cid = connector(store)
        assert record_snapshots(store, account, cid, [JAN]).accepted == 1  # table 2 is there
    finally:
        store.close()


def test_a_newer_schema_is_refused_with_a_clear_message(pg: PostgresStore, pg_url: str) -> None:
    sql(pg_url, "INSERT INTO schema_version VALUES (%s)", SCHEMA_VERSION + 7)
    with pytest.raises(SchemaTooNew) as refused:
        pg.migrate()
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 7}" in message
    assert f"newer than this ctel knows ({SCHEMA_VERSION})" in message
    assert "upgrade connector-telemetry" in message
    for command in (["db", "migrate"], ["serve", "--port", str(free_port())]):
        done = subprocess.run(
            [sys.executable, "-m", "connector_telemetry", *command, "--db", pg_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "newer than this ctel knows" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_server_is_a_clear_error_and_503(tmp_path: Path) -> None:
    dead = f"postgresql://ctel:secret@/nowhere?host={tmp_path}&port=1"
    assert describe(dead) == f"postgresql://ctel:***@/nowhere?host={tmp_path}&port=1"
    assert describe("postgres://u@h/d?password=x&sslmode=require") == (
        "postgres://u@h/d?password=***&sslmode=require"
    )
    store = PostgresStore(dead, pool_timeout_seconds=0.5)
    with pytest.raises(psycopg.OperationalError) as refused:
        store.migrate()
    assert explain(refused.value, dead) == (
        1,
        f"cannot connect to {describe(dead)}: " + (" ".join(str(refused.value).split())),
    )
    app = create_app(Settings(db=dead, pool_timeout_seconds=0.5), store)
    try:
        transport = httpx.ASGITransport(app=app)

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(
                    "/client/v4/accounts/a/magic/connectors",
                    headers={"Authorization": "Bearer " + "A" * 40},
                )

        import asyncio

        answer = asyncio.run(call())
        assert answer.status_code == 503, answer.text
        assert answer.json()["errors"][0]["code"] == 1503
    finally:
        app.ctx.close()


def test_a_lost_reader_connection_is_replaced(pg: PostgresStore, pg_url: str) -> None:
    account, cid = connector(pg)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN, "n": 0}])
    assert pg.get_event(account, cid, [(JAN, 0.0)]) is not None
    sql(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    assert pg.get_event(account, cid, [(JAN, 0.0)]) is not None  # reader: reconnected
    assert record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN, "n": 1}]).accepted == 1


# -- partitions -----------------------------------------------------------------------


def test_a_partition_per_month_and_purge_drops_whole_months(pg: PostgresStore, pg_url: str) -> None:
    account, cid = connector(pg)
    day = 86_400
    items = [{"e": {"k": "Init"}, "t": t, "n": 0} for t in (JAN, JAN + day, FEB, FEB + 20 * day)]
    items += [{"e": {"k": "Init"}, "t": t, "n": 0} for t in (5, 5e9, MAR + day)]
    assert record(pg, account, cid, items).accepted == 7
    record_snapshots(pg, account, cid, [JAN + 1, FEB + 1])
    assert partitions(pg_url, "events") == [
        "events_2024_01",
        "events_2024_02",
        "events_2024_03",
        "events_before_2000",
        "events_from_2100",
    ]
    assert "snapshots_2024_01" in partitions(pg_url, "snapshots")
    in_feb = sql(pg_url, "SELECT count(*) FROM events_2024_02")[0][0]
    assert in_feb == 2 and sql(pg_url, "SELECT count(*) FROM events_before_2000")[0][0] == 1

    cutoff = FEB + 10 * day  # January whole, the first third of February, and t=5
    gone = pg.purge_telemetry(cutoff, 1)
    assert gone == 3  # January's two events and one snapshot, dropped with their tables
    assert "events_2024_01" not in partitions(pg_url, "events")
    assert "snapshots_2024_01" not in partitions(pg_url, "snapshots")
    total = gone
    while step := pg.purge_telemetry(cutoff, 1):
        assert step == 1  # the rest in bounded batches
        total += step
    assert total == 6
    left = [row[0] for row in pg.export_events(account, cid, None, 100)]
    assert left == [FEB + 20 * day, MAR + day, 5e9]
    assert [row[0] for row in pg.export_snapshots(account, cid, None, 100)] == []
    assert "events_2024_02" in partitions(pg_url, "events")  # not entirely before the cutoff

    # January again (an agent replaying its spool): the month is made anew, also by a
    # process that still believes it exists.
    other = PostgresStore(pg_url)
    try:
        assert record(other, account, cid, [{"e": {"k": "Init"}, "t": FEB + 1, "n": 5}])
        pg.purge_telemetry(MAR, 10)  # drops February, which `other` has in its cache
        assert record(other, account, cid, [{"e": {"k": "Init"}, "t": FEB + 2, "n": 0}])
        assert record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN, "n": 0}]).accepted == 1
    finally:
        other.close()
    assert "events_2024_01" in partitions(pg_url, "events")
    assert pg.get_event(account, cid, [(JAN, 0.0)]) == b'{"e":{"k":"Init"},"n":0,"t":1704067200}'
    assert pg.get_event(account, cid, [(FEB + 2, 0.0)]) is not None


def test_month_boundaries(pg: PostgresStore, pg_url: str) -> None:
    """Each row lands in the partition its month names, right up to the boundaries."""
    account, cid = connector(pg)
    expected = {
        JAN - 1e-4: "events_2023_12",
        FEB - 1e-4: "events_2024_01",
        FEB: "events_2024_02",
        MONTHS_FROM - 1e-3: "events_before_2000",
        MONTHS_FROM: "events_2000_01",
        MONTHS_TO - 1e-3: "events_2099_12",
        MONTHS_TO: "events_from_2100",
        0: "events_before_2000",
        1e300: "events_from_2100",
    }
    items = [{"e": {"k": "Init"}, "t": t, "n": 0} for t in expected]
    assert record(pg, account, cid, items).accepted == len(expected)
    rows = sql(pg_url, "SELECT t, tableoid::regclass::text FROM events")
    assert dict(rows) == expected


def test_an_id_with_nul_names_nothing(pg: PostgresStore) -> None:
    """PostgreSQL text cannot hold NUL: such an id is not found (as on SQLite)."""
    account, _ = connector(pg)
    assert pg.get_connector(account, "a\x00b") is None
    assert pg.delete_connector(account, "a\x00b") is None
    with pytest.raises(NotFound):
        pg.get_event(account, "a\x00b", [(1.0, 0.0)])
    with pytest.raises(NotFound):
        record(pg, account, "a\x00b", [{"e": {"k": "Init"}, "t": 1, "n": 0}])


def test_latest_reads_only_the_newest_months(pg: PostgresStore, pg_url: str) -> None:
    """Latest Events over many months: an ordered scan from the newest partition."""
    account, cid = connector(pg)
    items = [{"e": {"k": "Init"}, "t": JAN + m * 2_700_000, "n": 0} for m in range(14)]
    record(pg, account, cid, items)
    latest = pg.latest_events(account, cid, 3)
    assert [orjson.loads(doc)["t"] for doc in latest] == [items[i]["t"] for i in (13, 12, 11)]
    cpk = sql(pg_url, "SELECT pk FROM connectors WHERE id=%s", cid)[0][0]
    plan = "\n".join(
        line
        for (line,) in sql(
            pg_url,
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT doc FROM events WHERE cpk=%s "
            "ORDER BY t DESC, n DESC LIMIT 3",
            cpk,
        )
    )
    assert "Merge Append" not in plan and "never executed" in plan, plan


# -- several writers --------------------------------------------------------------------


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; results (or exceptions)."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_writers_in_several_processes_stay_exact(pg: PostgresStore, pg_url: str) -> None:
    """Four stores (as four servers would have) write one connector at once."""
    account, cid = connector(pg)
    nodes = [PostgresStore(pg_url) for _ in range(4)]
    try:
        # events without n: every one gets its own number, 0..N-1 with no gap
        unnumbered = [{"e": {"k": "Reconcile", "i": i}, "t": JAN} for i in range(50)]
        results = in_threads(8, lambda i: record(nodes[i % 4], account, cid, unnumbered))
        assert all(r.accepted == 50 for r in results), results
        ns = sorted(row[1] for row in pg.export_events(account, cid, None, 1000))
        assert ns == [float(n) for n in range(400)]

        # the same batch with n from every node: stored once, the rest are duplicates
        numbered = [{"e": {"k": "Init"}, "t": FEB + i, "n": 0} for i in range(100)]
        results = in_threads(8, lambda i: record(nodes[i % 4], account, cid, numbered))
        assert sum(r.accepted for r in results) == 100
        assert sum(r.duplicates for r in results) == 700

        # one (t, n), different content from each node: one wins, the others are 409
        results = in_threads(
            8,
            lambda i: record(
                nodes[i % 4], account, cid, [{"e": {"k": "Init", "i": i}, "t": MAR, "n": 99}]
            ),
        )
        assert sum(1 for r in results if isinstance(r, Conflict)) == 7, results

        # one pending interrupt, whoever asks
        results = in_threads(
            8,
            lambda i: nodes[i % 4].create_interrupt(account, cid, "reboot", False, "2024-01-01"),
        )
        assert sum(1 for r in results if isinstance(r, Conflict)) == 7, results
        picked = in_threads(4, lambda i: nodes[i].pick_up_interrupts(account, cid, "2024-01-02"))
        assert sorted(len(p) for p in picked) == [0, 0, 0, 1]
    finally:
        for node in nodes:
            node.close()


@pytest.mark.parametrize("live", ["postgres"], indirect=True)
def test_two_servers_on_one_database(live: LiveServer, tmp_path: Path) -> None:
    """Two `ctel serve` on one PostgreSQL database, written through both at once:
    numbering, idempotency and cursor paging stay exact."""
    store = open_store(Settings(db=str(live.db)))
    tenant = make_tenant(store)
    store.close()
    second = start_server(str(live.db), log_path=tmp_path / "second.log")
    try:
        apis = [live.api, second.api]
        made = httpx.post(
            f"{apis[0]}/accounts/{tenant.account_id}/magic/connectors",
            json={"device": {"id": "two-servers"}},
            headers=tenant.write,
        )
        path = f"/accounts/{tenant.account_id}/magic/connectors/{made.json()['result']['id']}"
        events_url = [api + path + "/telemetry/events" for api in apis]

        def post(i: int) -> httpx.Response:
            body = [{"e": {"k": "Reconcile", "w": i, "j": j}, "t": JAN} for j in range(25)]
            body += [{"e": {"k": "Init"}, "t": FEB + j, "n": 0} for j in range(25)]
            return httpx.post(events_url[i % 2], json=body, headers=tenant.write, timeout=60)

        answers = in_threads(6, post)
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert sum(a.json()["result"]["accepted"] for a in answers) == 6 * 25 + 25

        # page through everything, alternating servers, while both keep ingesting later
        # events: every event before the writes appears exactly once
        seen: list[tuple[float, float]] = []
        cursor = None
        stop = threading.Event()

        def keep_writing() -> None:
            t = MAR
            while not stop.is_set():
                t += 1
                httpx.post(
                    events_url[int(t) % 2],
                    json=[{"e": {"k": "Init"}, "t": t, "n": 0}],
                    headers=tenant.write,
                )

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            page_no = 0
            while True:
                params: dict[str, Any] = {"from": 0, "to": MAR - 1, "limit": 7}
                if cursor:
                    params["cursor"] = cursor
                got = httpx.get(events_url[page_no % 2], params=params, headers=tenant.read)
                result = got.json()["result"]
                seen += [(item["t"], item["n"]) for item in result["items"]]
                cursor = result.get("cursor")
                page_no += 1
                if not cursor:
                    break
        finally:
            stop.set()
            writer.join(30)
        assert len(seen) == len(set(seen)) == 175
        assert sorted(n for t, n in seen if t == JAN) == list(range(150))
    finally:
        stop_server(second)


# -- the feed: a row per ingest batch (schema 8, issue 13; store/pg_feed.py) -----------
# Reads expand the rows into items exactly as a row per item would read, whatever the
# window (``limit``) and the filter; rows stored before schema 8 read the same after it.


def test_reads_expand_batch_rows_in_any_window_and_filter(pg: PostgresStore) -> None:
    check_reads(pg, *fill_feed(pg))


def test_rows_of_one_item_from_before_schema_8_read_the_same(
    pg: PostgresStore, pg_url: str
) -> None:
    account, _, expected = fill_feed(pg)
    # back to schema 7's layout (a row per item), then migrate again
    sql(
        pg_url,
        "CREATE TABLE old AS SELECT f.account_id, f.seq - f.items + x.o AS seq, f.cpk, f.kind, "
        "x.t, coalesce(x.n, 0) AS n, f.a, x.k FROM feed f, "
        "unnest(f.ts, f.ns, f.ks) WITH ORDINALITY AS x(t, n, k, o); DELETE FROM feed; "
        "ALTER TABLE feed DROP COLUMN items, DROP COLUMN ts, DROP COLUMN ns, DROP COLUMN ks, "
        "ADD COLUMN t float8 NOT NULL, ADD COLUMN n float8 NOT NULL, ADD COLUMN k text; "
        "INSERT INTO feed (account_id, seq, cpk, kind, t, n, a, k) "
        "SELECT account_id, seq, cpk, kind, t, n, a, k FROM old; DROP TABLE old; "
        "DELETE FROM schema_version WHERE version >= 8",
    )
    assert pg.migrate() == SCHEMA_VERSION
    assert read_feed(pg, account, FeedFilter(), 4) == expected
    assert read_feed(pg, account, FeedFilter(kind="event", k="Leave"), 2) == [
        x for x in expected if x[3] == "Leave"
    ]


def test_a_batch_copied_before_its_lock_survives_a_deadlock(pg: PostgresStore, pg_url: str) -> None:
    """The common batch is COPYed before its connector's lock (store.pg_ingest). Here it
    waits for a key that another transaction holds uncommitted, and that one then waits
    for a row the COPY holds: PostgreSQL rolls the batch's transaction back (a deadlock),
    and the store runs the batch again, which then stores every event once."""
    account, cid = connector(pg)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 100, "n": 0}])  # pk cached
    (cpk,) = sql(pg_url, "SELECT cpk FROM events LIMIT 1")[0]
    batch = [{"e": {"k": "Init", "i": i}, "t": JAN, "n": i} for i in range(10)]
    outcome: list[Any] = []

    def ingest() -> None:
        try:
            outcome.append(record(pg, account, cid, batch))
        except Exception as exc:
            outcome.append(exc)

    insert = "INSERT INTO events (cpk, t, n, a, k, doc) VALUES (%s, %s, %s, 0, 'Init', '')"
    with (
        psycopg.connect(pg_url) as other,
        psycopg.connect(pg_url, autocommit=True) as watcher,
    ):
        other.execute(insert, (cpk, JAN, 5))  # uncommitted: the batch's COPY will wait on it
        thread = threading.Thread(target=ingest)
        thread.start()
        waiting = 0
        deadline = time.monotonic() + 20
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.02)
            (waiting,) = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'COPY events%'"
            ).fetchone() or (0,)
        assert waiting, "the batch's COPY did not wait for the uncommitted key"
        # now wait for a row the COPY holds: one of the two is rolled back after 1 s
        with contextlib.suppress(psycopg.errors.DeadlockDetected):
            other.execute(insert, (cpk, JAN, 0))  # (if PostgreSQL picks this one instead)
        other.rollback()
        thread.join(30)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert (outcome[0].accepted, outcome[0].duplicates) == (10, 0)
    stored = sql(pg_url, "SELECT n FROM events WHERE t = %s ORDER BY n", JAN)
    assert [n for (n,) in stored] == [float(i) for i in range(10)]


def test_numbered_and_unnumbered_batches_race_on_one_connector_and_stay_exact(
    pg: PostgresStore, pg_url: str
) -> None:
    """Batches COPYed before the lock (numbered) and numbered under it (without ``n``), at
    the same times from four stores at once: every event is stored exactly once and every
    acknowledged one is there."""
    account, cid = connector(pg)
    nodes = [PostgresStore(pg_url) for _ in range(4)]
    for node in nodes:  # every node knows the connector's pk: the COPY goes first
        record(node, account, cid, [{"e": {"k": "Init"}, "t": JAN + 500, "n": 0}])
    try:

        def batch(i: int) -> list[dict[str, Any]]:
            if i % 2:
                return [{"e": {"k": "Reconcile", "w": i}, "t": FEB + j} for j in range(20)]
            return [{"e": {"k": "Init"}, "t": FEB + j, "n": 100 + j % 3} for j in range(20)]

        results = in_threads(16, lambda i: record(nodes[i % 4], account, cid, batch(i)))
        assert not [r for r in results if isinstance(r, Exception)], results
        rows = sql(pg_url, "SELECT t, n, k FROM events WHERE t >= %s ORDER BY t, n", FEB)
        assert all(r.accepted == 20 for r in results[1::2])  # each found free numbers
        assert sum(1 for _, _, k in rows if k == "Reconcile") == 8 * 20
        init = {(t, n) for t, n, k in rows if k == "Init"}
        assert init == {(float(FEB + j), float(100 + j % 3)) for j in range(20)}
        numbered = results[0::2]
        assert all(r.accepted + r.duplicates == 20 for r in numbered)
        assert sum(r.accepted for r in numbered) == 20  # none stored twice
    finally:
        for node in nodes:
            node.close()


def test_a_copied_batch_takes_the_lock_with_its_heartbeat_and_keeps_the_version_rule(
    pg: PostgresStore, pg_url: str
) -> None:
    """The common batch's heartbeat is decided on the locked row, in the statement that
    locks it (``pg_ingest.claiming``): the newest version seen moves forward only, and a
    batch without versions leaves it."""
    account, cid = connector(pg)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 100, "n": 0}])  # pk cached

    def seen() -> tuple[Any, ...]:
        return sql(
            pg_url,
            "SELECT last_seen_version, last_seen_t, last_heartbeat FROM connectors WHERE id=%s",
            cid,
        )[0]

    assert seen()[:2] == (None, None)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 200, "n": 0, "v": "2.0"}])
    assert seen()[:2] == ("2.0", JAN + 200)
    before = seen()[2]
    time.sleep(0.01)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 150, "n": 0, "v": "1.0"}])
    assert seen()[:2] == ("2.0", JAN + 200)  # older: a replayed spool
    assert seen()[2] > before  # yet a sign of life
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 300, "n": 0}])  # no version
    assert seen()[:2] == ("2.0", JAN + 200)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 200, "n": 1, "v": "2.1"}])
    assert seen()[:2] == ("2.1", JAN + 200)  # as new as the newest seen: taken
    counts = dict(sql(pg_url, "SELECT k, count FROM event_counts"))
    assert counts == {"Init": 5}


def test_a_copied_batch_for_a_connector_gone_or_replaced_stores_nothing_under_it(
    pg: PostgresStore, pg_url: str
) -> None:
    """A node that cached a connector's pk COPYs its next batch before any lock; if the
    connector was deleted meanwhile (here by another node) the batch is 404 and nothing
    of it stays; if the row now has another pk (an import replaced it), the batch goes
    under that one."""
    account, cid = connector(pg)
    other = PostgresStore(pg_url)
    try:
        record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN, "n": 0}])  # pk cached
        (old,) = sql(pg_url, "SELECT pk FROM connectors WHERE id=%s", cid)[0]
        with psycopg.connect(pg_url) as conn:  # the row again, under a new pk
            conn.execute("CREATE TEMP TABLE was AS SELECT * FROM connectors WHERE id=%s", (cid,))
            conn.execute("DELETE FROM connectors WHERE id=%s", (cid,))
            conn.execute("UPDATE was SET pk = pk + 1000")
            conn.execute("INSERT INTO connectors OVERRIDING SYSTEM VALUE SELECT * FROM was")
        got = record(
            pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 1, "n": i} for i in range(3)]
        )
        assert (got.accepted, got.duplicates) == (3, 0)
        rows = sql(pg_url, "SELECT cpk, count(*) FROM events WHERE t=%s GROUP BY cpk", JAN + 1)
        assert rows == [(old + 1000, 3)]

        connectors.delete_connector(other, account, cid)
        with pytest.raises(NotFound):
            record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN + 2, "n": 0}])
        assert sql(pg_url, "SELECT count(*) FROM events WHERE t=%s", JAN + 2) == [(0,)]
    finally:
        other.close()


def test_staged_batches_interleaved_as_the_writer_runs_them(pg: PostgresStore, pg_url: str) -> None:
    """``record_events_staged`` as api.writer drives it: a batch prepared (no connection
    taken) while the one before it runs in the database, then sent once that one is done;
    one of them repeats stored keys and goes the usual way after its statements ran."""
    account, cid = connector(pg)
    record(pg, account, cid, [{"e": {"k": "Init"}, "t": JAN, "n": 0}])  # pk cached

    def staged(t: float, kind: str = "Init") -> Any:
        body = orjson.dumps([{"e": {"k": kind}, "t": t, "n": i} for i in range(3)])
        batch = events.parse_batch(body, "application/json", 10)
        return events.record_events_staged(pg, account, cid, batch)

    def step(gen: Any) -> Any:
        """To the next ``yield`` (None) or the end (the result)."""
        try:
            next(gen)
        except StopIteration as done:
            return done.value
        return None

    idle = pg.pool_state()
    a, b, c = staged(JAN + 1), staged(JAN + 2, "Leave"), staged(JAN + 1)
    assert step(a) is None and pg.pool_state() == idle  # prepared: no connection taken
    assert step(a) is None  # its query runs, on a connection of the pool
    busy = pg.pool_state()
    assert busy[1] == idle[1] - 1
    assert step(b) is None and pg.pool_state() == busy  # prepared meanwhile, no connection
    assert step(a) == IngestResult(accepted=3, duplicates=0)
    assert step(b) is None and step(c) is None  # c prepared while b runs
    assert step(b) == IngestResult(accepted=3, duplicates=0)
    assert step(c) is None  # c's COPY meets a's keys: the usual way, after the yield
    assert step(c) == IngestResult(accepted=0, duplicates=3)
    stored = sql(pg_url, "SELECT t, count(*) FROM events GROUP BY t ORDER BY t")
    assert stored == [(JAN, 1), (JAN + 1, 3), (JAN + 2, 3)]
    assert dict(sql(pg_url, "SELECT k, count FROM event_counts")) == {"Init": 4, "Leave": 3}
