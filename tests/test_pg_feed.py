"""The feed on PostgreSQL keeps one row per ingest batch (schema 8, store/pg_feed.py):
reads expand the rows into items exactly as a row per item would read, whatever the
window (``limit``) and the filter; rows stored before schema 8 read the same after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from connector_telemetry.models import FeedFilter
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.settings import Settings
from connector_telemetry.store import open_store
from connector_telemetry.store.postgres import PostgresStore
from connector_telemetry.testing import TemporaryPostgres

JAN = 1_704_067_200
KINDS = ("Init", "Reconcile", "Leave")
SNAPSHOT = {
    "v": "1",
    "count_reclaim_failures": 0,
    "count_reclaimed_paths": 0,
    "count_record_failed": 0,
    "count_transmit_failures": 0,
}


@pytest.fixture
def url(postgres_server: TemporaryPostgres) -> str:
    return postgres_server.new_database("ctel_pgfeed")


@pytest.fixture
def pg(url: str) -> Iterator[PostgresStore]:
    store = open_store(Settings(db=url))
    assert isinstance(store, PostgresStore)
    store.migrate()
    yield store
    store.close()


def sql(url: str, query: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query.encode())


def fill(store: PostgresStore) -> tuple[str, dict[str, int], list[tuple[int, str, str, Any]]]:
    """Batches of events and snapshots into two connectors (some items repeated, which
    the feed leaves out); the account and what its feed should hold, in order:
    ``(seq, connector_id, kind, k)``."""
    account = credentials.create_account(store)
    cids = [
        connectors.create_connector(store, account, {"device": {"id": f"d{i}"}})[0].id
        for i in range(2)
    ]
    expected: list[tuple[int, str, str, Any]] = []

    def send(cid: str, keys: list[tuple[int, int]], repeated: int = 0) -> None:
        items = [{"e": {"k": KINDS[(t + n) % 3]}, "t": JAN + t, "n": n, "v": "1"} for t, n in keys]
        batch = events.parse_batch(orjson.dumps(items), "application/json", 1000)
        result = events.record_events(store, account, cid, batch)
        assert (result.accepted, result.duplicates) == (len(keys) - repeated, repeated)
        for t, n in keys[repeated:]:
            expected.append((len(expected) + 1, cid, "event", KINDS[(t + n) % 3]))

    def shoot(cid: str, ts: list[int]) -> None:
        body = orjson.dumps([{**SNAPSHOT, "t": JAN + t} for t in ts])
        snaps = snapshots.parse_batch(body, "application/json", 1000)
        assert snapshots.record_snapshots(store, account, cid, snaps).accepted == len(ts)
        first = len(expected) + 1
        expected.extend((first + i, cid, "snapshot", None) for i in range(len(ts)))

    send(cids[0], [(1, 0), (1, 1), (2, 0)])
    shoot(cids[1], [5, 6])
    send(cids[1], [(3, 0)])
    send(cids[0], [(1, 0), (2, 0), (4, 0), (4, 1), (5, 0), (6, 2), (7, 0)], repeated=2)
    shoot(cids[0], [9])
    send(cids[1], [(8, n) for n in range(5)])
    pks = {cid: store.connector_pk(account, cid) for cid in cids}
    return account, pks, expected


def read_all(
    store: PostgresStore, account: str, which: FeedFilter, limit: int, after: int = 0
) -> list[tuple[int, str, str, Any]]:
    head = store.feed_head(account)
    got = []
    while after < head:
        items, reached = store.read_feed(account, after, head, which, limit)
        assert len(items) <= limit and reached > after
        assert all(after < item.seq <= reached for item in items)
        got += [(item.seq, item.connector_id, item.kind, item.k) for item in items]
        after = reached
    return got


def test_reads_expand_batch_rows_in_any_window_and_filter(pg: PostgresStore) -> None:
    account, pks, expected = fill(pg)
    assert pg.feed_head(account) == len(expected) == 17
    assert pg.feed_floor(account) == 1
    cid = next(iter(pks))
    for limit in (1, 2, 3, 7, 1000):
        assert read_all(pg, account, FeedFilter(), limit) == expected
        assert read_all(pg, account, FeedFilter(), limit, after=4) == expected[4:]
        for which, keep in (
            (FeedFilter(cpk=pks[cid]), lambda item: item[1] == cid),
            (FeedFilter(kind="snapshot"), lambda item: item[2] == "snapshot"),
            (FeedFilter(kind="event", k="Reconcile"), lambda item: item[3] == "Reconcile"),
            (
                FeedFilter(cpk=pks[cid], kind="event", k="Init"),
                lambda item: item[1:] == (cid, "event", "Init"),
            ),
        ):
            assert read_all(pg, account, which, limit) == [x for x in expected if keep(x)]
    items, _ = pg.read_feed(account, 0, 3, FeedFilter(), 100)
    assert [orjson.loads(item.doc)["t"] for item in items] == [JAN + 1, JAN + 1, JAN + 2]
    assert pg.feed_since(account, 0) == 0 and pg.feed_since(account, 4e9) == 17


def test_rows_of_one_item_from_before_schema_8_read_the_same(pg: PostgresStore, url: str) -> None:
    account, _, expected = fill(pg)
    # back to schema 7's layout (a row per item), then migrate again
    sql(
        url,
        "CREATE TABLE old AS SELECT f.account_id, f.seq - f.items + x.o AS seq, f.cpk, f.kind, "
        "x.t, coalesce(x.n, 0) AS n, f.a, x.k FROM feed f, "
        "unnest(f.ts, f.ns, f.ks) WITH ORDINALITY AS x(t, n, k, o); DELETE FROM feed; "
        "ALTER TABLE feed DROP COLUMN items, DROP COLUMN ts, DROP COLUMN ns, DROP COLUMN ks, "
        "ADD COLUMN t float8 NOT NULL, ADD COLUMN n float8 NOT NULL, ADD COLUMN k text; "
        "INSERT INTO feed (account_id, seq, cpk, kind, t, n, a, k) "
        "SELECT account_id, seq, cpk, kind, t, n, a, k FROM old; DROP TABLE old; "
        "DELETE FROM schema_version WHERE version = 8",
    )
    assert pg.migrate() == 8
    assert read_all(pg, account, FeedFilter(), 4) == expected
    assert read_all(pg, account, FeedFilter(kind="event", k="Leave"), 2) == [
        x for x in expected if x[3] == "Leave"
    ]
