"""The feed on PostgreSQL (schema 8, issue 13): one row per ingest batch (store.feed has
the rules; the migration ``0008_feed_batches.postgres.sql`` the layout).

A batch's items are appended with one statement, which bumps the account's head (its row
lock held until commit, so seq order stays commit order) and stores the batch's keys as
arrays in one row. Reads expand the rows (``unnest ... WITH ORDINALITY``: the i-th item of
a row ending at ``seq`` is at ``seq - items + i``) and look at most ``limit`` positions
past the reader's: the rows that hold them are those after it up to the first row that
reaches the last of them (positions are contiguous: each row starts where the one before
ended).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from connector_telemetry.models import FeedFilter, FeedItem
from connector_telemetry.store.feed import FeedEntry
from connector_telemetry.store.pg_binary import Float8Array, TextArray
from connector_telemetry.store.sql import Connection

Conn = psycopg.Connection[Any]
Read = Callable[[str, Any], Any]

#: ``(account_id, items, account_id, items, cpk, kind, a, ts, ns, ks)``
_APPEND = (
    "WITH head AS (INSERT INTO feed_heads (account_id, seq) VALUES (%s, %s) "
    "ON CONFLICT (account_id) DO UPDATE SET seq = feed_heads.seq + excluded.seq RETURNING seq) "
    "INSERT INTO feed (account_id, seq, items, cpk, kind, a, ts, ns, ks) "
    "SELECT %s, head.seq, %s, %s, %s, %s, %b, %b::float8[], %b::text[] FROM head"
)

#: The read (``{where}``: the filters): the window's parameters are ``(account_id, after,
#: account_id, last, last, after, last)``, then the filters', then the limit.
_READ = (
    "SELECT u.seq, c.id, f.kind, u.k, COALESCE(e.doc, s.doc) FROM feed f "
    "CROSS JOIN LATERAL (SELECT f.seq - f.items + x.o AS seq, x.t, x.n, x.k "
    "FROM unnest(f.ts, f.ns, f.ks) WITH ORDINALITY AS x(t, n, k, o)) u "
    "JOIN connectors c ON c.pk = f.cpk "
    "LEFT JOIN events e ON f.kind = 'event' AND e.cpk = f.cpk AND e.t = u.t AND e.n = u.n "
    "LEFT JOIN snapshots s ON f.kind = 'snapshot' AND s.cpk = f.cpk AND s.t = u.t "
    "WHERE f.account_id = %s AND f.seq > %s AND f.seq <= COALESCE("
    "(SELECT min(seq) FROM feed WHERE account_id = %s AND seq >= %s), %s) "
    "AND u.seq > %s AND u.seq <= %s{where} ORDER BY u.seq LIMIT %s"
)
#: The filters' columns in ``_READ`` (connector, kind, event kind: ``FeedFilter``'s order).
_COLUMNS = ("f.cpk", "f.kind", "u.k")
#: The read of each combination of filters' shapes (which of a filter's fields are set).
#: Distinct shapes are few (each subscriber set of an account makes one); past this many
#: the cache starts over.
_QUERIES: dict[tuple[tuple[bool, ...], ...], str] = {}
_QUERIES_KEPT = 256


def read(
    read_one: Read,
    account_id: str,
    after: int,
    upto: int,
    which: Sequence[FeedFilter],
    limit: int,
) -> tuple[list[FeedItem], int]:
    """``Feed.read_feed_any`` in one statement: the filters are ORed in SQL, so rows no
    filter wants are never joined to their documents. ``read_one(query, args)``: a cursor
    on the store's reader."""
    shape = tuple(tuple(x is not None for x in w) for w in which)
    query = _QUERIES.get(shape)
    if query is None:
        clauses = [
            " AND ".join(f"{column} = %s" for column, on in zip(_COLUMNS, part, strict=True) if on)
            for part in shape
        ]
        where = "" if "" in clauses else " AND (" + " OR ".join(f"({c})" for c in clauses) + ")"
        if len(_QUERIES) > _QUERIES_KEPT:
            _QUERIES.clear()
        query = _QUERIES[shape] = _READ.format(where=where)
    last = min(upto, after + limit)  # the rows holding positions (after, last]
    window = (account_id, after, account_id, last, last, after, last)
    args = [x for w in which for x in w if x is not None]
    rows = read_one(query, (*window, *args, limit)).fetchall()
    reached = int(rows[-1][0]) if len(rows) == limit else last
    items = [
        FeedItem(int(seq), str(cid), str(kind), k, bytes(doc))
        for seq, cid, kind, k, doc in rows
        if doc is not None
    ]
    return items, reached


def append(
    conn: Connection, account_id: str, cpk: int, kind: str, items: Sequence[FeedEntry]
) -> None:
    """The batch's new items, after everything the account's feed holds."""
    ts = Float8Array([item[0] for item in items])
    ns: Float8Array | None = None
    ks: TextArray | None = None
    if kind == "event":
        ns = Float8Array([item[1] for item in items])
        ks = TextArray([str(item[3]) for item in items])
    count = len(items)
    a = items[0][2]  # every item of a batch arrived at once
    conn.execute(_APPEND, (account_id, count, account_id, count, cpk, kind, a, ts, ns, ks))
