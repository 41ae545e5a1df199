"""The feed on SQLite (schema 9): one row per ingest batch, as on PostgreSQL (store.feed has
the rules; the migration ``0009_feed_batches.sqlite.sql`` the layout).

A batch's items are appended as one row: the account's head bumped, and the batch's keys
``[t, n, k]`` as a JSON array (orjson writes each float as the shortest text that reads
back as the same double, and reads it so). SQLite has no arrays to expand in SQL with
their numbers exact, so reads expand the rows here: the rows after the reader's position,
in order, their items filtered until ``limit`` are kept (what one statement over a row per
item answered before schema 9), then each kept item's document looked up by its key
(in-process point lookups, a few microseconds each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.store.feed import FeedEntry

Read = Callable[[str, Any], Any]

APPEND = (
    "INSERT INTO feed (account_id, seq, items, cpk, kind, a, keys) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
#: ``(account_id, after, upto)``: the rows holding positions in ``(after, upto]``, in order.
_ROWS = (
    "SELECT seq, items, cpk, kind, keys FROM feed WHERE account_id = ? AND seq > ? "
    "AND seq - items < ? ORDER BY seq"
)
_CONNECTOR_ID = "SELECT id FROM connectors WHERE pk = ?"
_EVENT_DOC = "SELECT doc FROM events WHERE cpk = ? AND t = ? AND n = ?"
_SNAPSHOT_DOC = "SELECT doc FROM snapshots WHERE cpk = ? AND t = ?"


def row(
    account_id: str, head: int, cpk: int, kind: str, items: Sequence[FeedEntry]
) -> tuple[Any, ...]:
    """``APPEND``'s parameters for a batch's new items, the last of which is at ``head``."""
    keys = orjson.dumps([[t, n, k] for t, n, _, k in items]).decode()
    return (account_id, head, len(items), cpk, kind, items[0][2], keys)


def read(
    read_one: Read,
    account_id: str,
    after: int,
    upto: int,
    which: Sequence[FeedFilter],
    limit: int,
) -> tuple[list[FeedItem], int]:
    """``Feed.read_feed_any`` (same answers as the statement PostgreSQL runs): the items
    after ``after`` up to ``upto`` that any of ``which`` selects, at most ``limit``, and
    the position reached. ``read_one(query, args)``: a cursor on the store's reader."""
    rows = read_one(_ROWS, (account_id, after, upto))
    ids: dict[int, str | None] = {}
    kept: list[tuple[int, int, str, str, float, float, str | None]] = []
    for seq, items, cpk, kind, keys in rows:
        if cpk not in ids:
            found = read_one(_CONNECTOR_ID, (cpk,)).fetchone()
            ids[cpk] = None if found is None else str(found[0])
        connector_id = ids[cpk]
        if connector_id is None:
            continue  # (a connector deleted: none of its items, as the join leaves them out)
        first = int(seq) - int(items) + 1
        for i, (t, n, k) in enumerate(orjson.loads(keys)):
            position = first + i
            if after < position <= upto and any(_selects(w, cpk, kind, k) for w in which):
                kept.append((position, cpk, connector_id, kind, t, n, k))
                if len(kept) == limit:
                    break
        if len(kept) == limit:
            break
    rows.close()
    reached = kept[-1][0] if len(kept) == limit else upto
    out = []
    for position, cpk, connector_id, kind, t, n, k in kept:
        if kind == "event":
            doc = read_one(_EVENT_DOC, (cpk, t, n)).fetchone()
        else:
            doc = read_one(_SNAPSHOT_DOC, (cpk, t)).fetchone()
        if doc is not None:  # (gone: its connector deleted, or purged)
            out.append(FeedItem(position, connector_id, kind, k, bytes(doc[0])))
    return out, reached


def _selects(which: FeedFilter, cpk: int, kind: str, k: str | None) -> bool:
    return (
        (which.cpk is None or which.cpk == cpk)
        and (which.kind is None or which.kind == kind)
        and (which.k is None or which.k == k)
    )
