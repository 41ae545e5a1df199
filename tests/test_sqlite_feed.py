"""The feed on SQLite (schema 9, store.sqlite_feed): a row per ingest batch, expanded when
read exactly as a row per item read before, whatever the window and the filter; rows
stored before schema 9 (a row per item) read the same after the migration, their keys
exact to the bit (the documents are found by them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector_telemetry.models import FeedFilter
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.store import sqlite_feed
from connector_telemetry.store.sqlite import SQLiteStore
from support.feed import JAN, KINDS, SNAPSHOT, check_reads, fill_feed, read_feed

SCHEMA_VERSION = SQLiteStore.known_schema_version


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "feed.db"))
    store.migrate()
    yield store
    store.close()


def test_a_batch_is_one_row_and_reads_expand_it_in_any_window_and_filter(
    store: SQLiteStore,
) -> None:
    account, pks, expected = fill_feed(store)
    rows = store._read("SELECT seq, items FROM feed ORDER BY seq").fetchall()
    assert [tuple(r) for r in rows] == [(3, 3), (5, 2), (6, 1), (11, 5), (12, 1), (17, 5)]
    check_reads(store, account, pks, expected)


def test_rows_of_one_item_from_before_schema_9_read_the_same(
    store: SQLiteStore, tmp_path: Path
) -> None:
    account, _, expected = fill_feed(store)
    # keys that need all 17 digits to come back as the same double
    odd = [(JAN + 0.1 + i / 7, 0.1 * i) for i in range(3)]
    body = orjson.dumps([{"e": {"k": "Init"}, "t": t, "n": n} for t, n in odd])
    cid = expected[0][1]
    events.record_events(store, account, cid, events.parse_batch(body, "", 10))
    expected += [(18 + i, cid, "event", "Init") for i in range(3)]
    before = store._read("SELECT account_id, seq, items, cpk, kind, a, keys FROM feed").fetchall()
    store.close()
    # back to schema 6's layout (a row per item), written from Python's exact floats
    with sqlite3.connect(tmp_path / "feed.db", isolation_level=None) as db:
        per_item: list[tuple[Any, ...]] = []
        for account_id, seq, items, cpk, kind, a, keys in before:
            for i, (t, n, k) in enumerate(sqlite_feed.unpack(keys)):
                per_item.append((account_id, seq - items + 1 + i, cpk, kind, t, n, a, k))
        db.executescript(
            "DROP TABLE feed; CREATE TABLE feed (account_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " cpk INTEGER NOT NULL, kind TEXT NOT NULL, t REAL NOT NULL, n REAL NOT NULL,"
            " a REAL NOT NULL, k TEXT, PRIMARY KEY (account_id, seq)) WITHOUT ROWID;"
            " CREATE INDEX feed_arrival ON feed (account_id, a);"
            " DELETE FROM schema_version WHERE version >= 9;"
        )
        db.executemany("INSERT INTO feed VALUES (?, ?, ?, ?, ?, ?, ?, ?)", per_item)
    again = SQLiteStore(str(tmp_path / "feed.db"))
    try:
        assert again.migrate() == SCHEMA_VERSION
        assert again._read("SELECT count(*), sum(items) FROM feed").fetchone() == (20, 20)
        assert read_feed(again, account, FeedFilter(), 4) == expected
        assert read_feed(again, account, FeedFilter(kind="event", k="Leave"), 2) == [
            x for x in expected if x[3] == "Leave"
        ]
        items, _ = again.read_feed(account, 17, 20, FeedFilter(), 10)
        assert [(orjson.loads(i.doc)["t"], orjson.loads(i.doc)["n"]) for i in items] == odd
    finally:
        again.close()


def test_large_batches_read_whole(store: SQLiteStore) -> None:
    """Documents are looked up 400 keys a statement: 1000 events and 450 snapshots of one
    batch each come back whole, in order, with their own documents."""
    account = credentials.create_account(store)
    made, _ = connectors.create_connector(store, account, {"device": {"id": "big"}})
    body = orjson.dumps(
        [{"e": {"k": "Init", "i": i}, "t": JAN + i / 3, "n": i} for i in range(1000)]
    )
    events.record_events(store, account, made.id, events.parse_batch(body, "", 1000))
    body = orjson.dumps([{**SNAPSHOT, "t": JAN + i / 7} for i in range(450)])
    snapshots.record_snapshots(store, account, made.id, snapshots.parse_batch(body, "", 1000))
    items, reached = store.read_feed(account, 0, 1450, FeedFilter(), 2000)
    assert reached == 1450 and [item.seq for item in items] == list(range(1, 1451))
    assert [orjson.loads(item.doc)["e"]["i"] for item in items[:1000]] == list(range(1000))
    assert [orjson.loads(item.doc)["t"] for item in items[1000:]] == [
        JAN + i / 7 for i in range(450)
    ]
    items, reached = store.read_feed(account, 990, 1450, FeedFilter(kind="snapshot"), 5)
    assert [item.seq for item in items] == [1001, 1002, 1003, 1004, 1005] and reached == 1005


def test_keys_built_before_the_write_lock_are_the_new_items_keys(store: SQLiteStore) -> None:
    """A batch's keys are built before the lock when its items are known then (the
    connector's pk remembered, nothing stored already); otherwise from what was stored."""
    account = credentials.create_account(store)
    cid = connectors.create_connector(store, account, {"device": {"id": "d"}})[0].id

    def send(keys: list[tuple[float, int]]) -> None:
        items = [{"e": {"k": KINDS[n % 3]}, "t": t, "n": n} for t, n in keys]
        events.record_events(store, account, cid, events.parse_batch(orjson.dumps(items), "", 99))

    def shoot(ts: list[float]) -> None:
        body = orjson.dumps([{**SNAPSHOT, "t": t} for t in ts])
        snapshots.record_snapshots(store, account, cid, snapshots.parse_batch(body, "", 99))

    send([(JAN + 0.1, 0)])  # the pk not yet remembered: built under the lock
    send([(JAN + 1 / 3, 1), (JAN + 2, 2)])  # built before it
    send([(JAN + 2, 2), (JAN + 3.5, 4)])  # one stored already: the new one only
    shoot([JAN + 5.25, JAN + 6])
    shoot([JAN + 6, JAN + 7])  # one stored already
    rows = store._read("SELECT kind, items, keys FROM feed ORDER BY seq").fetchall()
    assert [(kind, items, sqlite_feed.unpack(keys)) for kind, items, keys in rows] == [
        ("event", 1, [(JAN + 0.1, 0.0, "Init")]),
        ("event", 2, [(JAN + 1 / 3, 1.0, "Reconcile"), (JAN + 2, 2.0, "Leave")]),
        ("event", 1, [(JAN + 3.5, 4.0, "Reconcile")]),
        ("snapshot", 2, [(JAN + 5.25, 0.0, None), (JAN + 6, 0.0, None)]),
        ("snapshot", 1, [(JAN + 7, 0.0, None)]),
    ]


@pytest.mark.parametrize(
    "keys",
    [
        [],
        [(JAN + 0.1, 0.0, "Init")],
        # doubles that need all 17 digits, extremes, kinds and None mixed
        [(JAN + 0.1 + i / 7, 0.1 * i, KINDS[i % 3]) for i in range(1000)],
        [(-1e308, 2.0**53, None), (5e-324, -0.0, "Leave"), (1.0, 1e300, None)],
        # more kinds than one byte indexes (not the 29 event kinds: any strings)
        [(float(i), float(i), f"k{i % 300}") for i in range(600)],
    ],
)
def test_packed_keys_read_back_exactly(keys: list[tuple[float, float, str | None]]) -> None:
    packed = sqlite_feed.pack(keys, 0, 1, 2)
    back = sqlite_feed.unpack(packed)
    assert back == keys
    assert [repr(x) for key in back for x in key] == [repr(x) for key in keys for x in key]
    kinds = len({k for _, _, k in keys})
    header = len(packed) - 16 * len(keys) - (1 if kinds <= 256 else 4) * len(keys)
    assert header < 32 + 8 * kinds  # 17 bytes an item (one-byte kinds), and a small header
    # rows written before keys were packed hold them as JSON, read as well
    assert [tuple(k) for k in sqlite_feed.unpack(orjson.dumps(keys).decode())] == keys


def test_packed_keys_without_n_or_k_and_in_big_endian_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [(9, JAN + 0.1), (9, JAN + 2 / 3)]
    assert sqlite_feed.unpack(sqlite_feed.pack(rows, 1, None, None)) == [
        (JAN + 0.1, 0.0, None),
        (JAN + 2 / 3, 0.0, None),
    ]
    little = sqlite_feed.pack([(JAN + 0.1, 1.0, "Init")], 0, 1, 2)
    monkeypatch.setattr(sqlite_feed, "_SWAP", True)  # as a big-endian machine runs it
    big = sqlite_feed.pack([(JAN + 0.1, 1.0, "Init")], 0, 1, 2)
    assert big != little and big[-17:-9] == little[-17:-9][::-1]  # t's bytes swapped
    assert sqlite_feed.unpack(big) == [(JAN + 0.1, 1.0, "Init")]
