"""The feed on SQLite (schema 9): one row per ingest batch, as on PostgreSQL (store.feed has
the rules; the migration ``0009_feed_batches.sqlite.sql`` the layout).

A batch's items are appended as one row: the account's head bumped, and the batch's keys
``(t, n, k)`` packed (``pack``): the ``t`` and ``n`` as 8-byte doubles (exact), each ``k``
as its index in the row's list of kinds; 17 bytes an item (a batch of 1000 events: 17 KB,
against 34 KB as JSON, which rows written before hold and reads still take). SQLite has
no arrays to expand in SQL, so reads expand the rows here: the rows after the reader's
position, in order, their items filtered until ``limit`` are kept (what one statement over
a row per item answered before schema 9), then the kept items' documents looked up by
their keys (``_documents``: a primary-key lookup each, 400 to a statement).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from connector_telemetry.models import FeedFilter, FeedItem

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
#: Documents looked up by key, this many keys per statement (2 parameters each, under
#: SQLite's oldest limit of 999 parameters).
_KEYS = 400


#: ``pack``'s first byte (JSON, written before, starts with ``[``)
_PACKED = 1
_SWAP = sys.byteorder != "little"  # packed little-endian: a database file moves anywhere


def pack(rows: Sequence[Sequence[Any]], t: int, n: int | None, k: int | None) -> bytes:
    """A row's ``keys``: the ``(t, n, k)`` of each of ``rows`` (their columns ``t``, ``n``,
    ``k``; None: n 0.0, k None), in order. Layout: ``_PACKED``; the header's length (2
    bytes); the header (JSON: the kinds, the index's array type); the ``t`` then the ``n``
    as doubles; each item's index into the kinds (1000 items: ~0.15 ms, JSON took ~0.2)."""
    ts = array("d", [row[t] for row in rows])
    ns = array("d", [row[n] for row in rows] if n is not None else bytes(8 * len(rows)))
    kinds: dict[str | None, int] = {}
    if k is None:
        marks = [0] * len(rows)
        kinds = {None: 0} if rows else {}
    else:
        known = kinds.setdefault
        marks = [known(row[k], len(kinds)) for row in rows]
    index = array("B" if len(kinds) <= 256 else "I", marks)
    if _SWAP:
        for part in (ts, ns, index):
            part.byteswap()
    header = orjson.dumps([list(kinds), index.typecode])
    return b"".join((bytes((_PACKED,)), len(header).to_bytes(2, "little"), header, ts, ns, index))


def unpack(keys: bytes | str) -> list[Any]:
    """``pack``'s ``(t, n, k)``, in order (``keys`` as JSON: rows from before ``pack``)."""
    if isinstance(keys, str) or keys[:1] != bytes((_PACKED,)):
        return orjson.loads(keys)  # type: ignore[no-any-return]
    size = int.from_bytes(keys[1:3], "little")
    kinds, code = orjson.loads(keys[3 : 3 + size])
    body = memoryview(keys)[3 + size :]
    index = array(code)
    count = len(body) // (16 + index.itemsize)
    ts, ns = array("d"), array("d")
    ts.frombytes(body[: 8 * count])
    ns.frombytes(body[8 * count : 16 * count])
    index.frombytes(body[16 * count :])
    if _SWAP:
        for part in (ts, ns, index):
            part.byteswap()
    return list(zip(ts.tolist(), ns.tolist(), [kinds[i] for i in index], strict=True))


def row(
    account_id: str, head: int, cpk: int, kind: str, count: int, a: float, keys: bytes
) -> tuple[Any, ...]:
    """``APPEND``'s parameters for ``count`` new items (packed ``keys``) that arrived at
    ``a``, the last of which is at ``head``."""
    return (account_id, head, count, cpk, kind, a, keys)


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
    everything = tuple(which) == (FeedFilter(),)
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
        lo = max(0, after + 1 - first)  # the row's items in (after, upto]
        entries = unpack(keys)[lo : max(lo, upto + 1 - first)]
        if everything:
            entries = entries[: limit - len(kept)]
        for i, (t, n, k) in enumerate(entries, first + lo):
            if everything or any(_selects(w, cpk, kind, k) for w in which):
                kept.append((i, cpk, connector_id, kind, t, n, k))
                if len(kept) == limit:
                    break
        if len(kept) == limit:
            break
    rows.close()
    reached = kept[-1][0] if len(kept) == limit else upto
    docs = _documents(read_one, [(cpk, kind, t, n) for _, cpk, _, kind, t, n, _ in kept])
    out = []
    for position, cpk, connector_id, kind, t, n, k in kept:
        doc = docs.get((cpk, kind, t, n))
        if doc is not None:  # (gone: its connector deleted, or purged)
            out.append(FeedItem(position, connector_id, kind, k, doc))
    return out, reached


def _documents(
    read_one: Read, keys: list[tuple[int, str, float, float]]
) -> dict[tuple[int, str, float, float], bytes]:
    """The stored documents of ``(cpk, kind, t, n)`` keys (those found), ``_KEYS`` keys
    of one connector and kind per statement: the keys as ``VALUES`` joined to the table,
    one primary-key lookup each (``(t, n) IN (VALUES ...)`` would scan the connector)."""
    wanted: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for cpk, kind, t, n in keys:
        wanted.setdefault((cpk, kind), []).append((t, n))
    found: dict[tuple[int, str, float, float], bytes] = {}
    for (cpk, kind), pairs in wanted.items():
        for start in range(0, len(pairs), _KEYS):
            part = pairs[start : start + _KEYS]
            if kind == "event":
                query = (
                    "WITH v(t, n) AS (VALUES " + ", ".join(["(?, ?)"] * len(part)) + ") "
                    "SELECT v.t, v.n, e.doc FROM v JOIN events e "
                    "ON e.cpk = ? AND e.t = v.t AND e.n = v.n"
                )
                rows = read_one(query, (*(x for pair in part for x in pair), cpk))
            else:
                query = (
                    "SELECT t, 0.0, doc FROM snapshots WHERE cpk = ? AND t IN ("
                    + ", ".join(["?"] * len(part))
                    + ")"
                )
                rows = read_one(query, (cpk, *(t for t, _ in part)))
            for t, n, doc in rows:
                found[(cpk, kind, t, n)] = bytes(doc)
    return found


def _selects(which: FeedFilter, cpk: int, kind: str, k: str | None) -> bool:
    return (
        (which.cpk is None or which.cpk == cpk)
        and (which.kind is None or which.kind == kind)
        and (which.k is None or which.k == k)
    )
