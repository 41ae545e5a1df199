"""The feed's shared checks (tests of store/feed.py's stores): batches of events and
snapshots into two connectors, and a reader that walks the feed window by window."""

from __future__ import annotations

from typing import Any

import orjson

from connector_telemetry.models import FeedFilter
from connector_telemetry.service import connectors, credentials, events, snapshots
from connector_telemetry.store.base import Store

JAN = 1_704_067_200  # 2024-01-01
SNAPSHOT = {
    "v": "1",
    "count_reclaim_failures": 0,
    "count_reclaimed_paths": 0,
    "count_record_failed": 0,
    "count_transmit_failures": 0,
}

KINDS = ("Init", "Reconcile", "Leave")


def fill_feed(store: Store) -> tuple[str, dict[str, int], list[tuple[int, str, str, Any]]]:
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


def read_feed(
    store: Store, account: str, which: FeedFilter, limit: int, after: int = 0
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


def check_reads(store: Store, account: str, pks: dict[str, int], expected: list[Any]) -> None:
    """Whatever the window (``limit``) and the filter, the feed ``fill_feed`` made reads as
    ``expected``; its floor, its first documents, and ``since`` too."""
    assert store.feed_head(account) == len(expected) == 17
    assert store.feed_floor(account) == 1
    cid = next(iter(pks))
    for limit in (1, 2, 3, 7, 1000):
        assert read_feed(store, account, FeedFilter(), limit) == expected
        assert read_feed(store, account, FeedFilter(), limit, after=4) == expected[4:]
        for which, keep in (
            (FeedFilter(cpk=pks[cid]), lambda item: item[1] == cid),
            (FeedFilter(kind="snapshot"), lambda item: item[2] == "snapshot"),
            (FeedFilter(kind="event", k="Reconcile"), lambda item: item[3] == "Reconcile"),
            (
                FeedFilter(cpk=pks[cid], kind="event", k="Init"),
                lambda item: item[1:] == (cid, "event", "Init"),
            ),
        ):
            assert read_feed(store, account, which, limit) == [x for x in expected if keep(x)]
    items, _ = store.read_feed(account, 0, 3, FeedFilter(), 100)
    assert [orjson.loads(item.doc)["t"] for item in items] == [JAN + 1, JAN + 1, JAN + 2]
    assert store.feed_since(account, 0) == 0 and store.feed_since(account, 4e9) == 17
