"""Ingest on PostgreSQL (used by store.postgres): numbering, inserting a batch,
telling duplicates from conflicts.

A batch goes in with a binary ``COPY`` (PostgreSQL's fastest way in: ~1.7x the rows/s
of the ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`` it replaced, issue
13), its input built in one pass (store.pg_binary), after the savepoint that
``PostgresStore._begin_batch`` sets with the connector's lock. Almost every batch is
new; one that repeats a stored key makes the COPY fail on the primary key, and then
(rolled back to the savepoint, nothing of the COPY left) the batch goes in with that
``INSERT ... ON CONFLICT DO NOTHING RETURNING``, whose missing rows are told apart as
duplicates (same content) or a conflict (409).

Every function runs inside the caller's transaction, after the connector row lock
(``SQLStore._lock_connector``), so what it reads stays true until commit whatever other
processes do: the batch is stored whole or not at all, exactly once across nodes. One
exception, the common batch (every event numbered, no key twice, its connector's pk
cached): it is COPYed *before* the lock, and the lock is taken by the first of the
statements that follow (``claiming``: the heartbeat's ``UPDATE``), then the counts, the feed,
and the commit, all in one simple query (``copy_then``, store.pg_script): two round trips
a batch, and writers of one connector hold its lock for no round trip at all, only while
the server runs those statements and the commit (issue 13: at 0.5 ms the lock was held
8 ms a batch, then 3 with the lock taken apart, and a batch cost five round trips).
Nothing the ``COPY`` relies on needs the lock: the primary key refuses a key stored or
being stored by another transaction (the ``COPY`` waits for that one to end, then fails
and the batch goes the usual way, under the lock); ``claiming`` checks the locked row's pk
against the cached one (else the query fails, nothing of it stays, and the batch is done
again the usual way). The price is a rare deadlock: a batch holding the lock whose rows
wait for the uncommitted rows of one that waits for the lock. PostgreSQL then rolls one of
them back whole (after ``deadlock_timeout``), and ``PostgresStore._telemetry_write`` runs
it again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import generators
from psycopg.errors import error_from_result
from psycopg.pq import ExecStatus
from psycopg.waiting import Wait

from connector_telemetry.models import NewEvent, NewSnapshot, same_content
from connector_telemetry.store.base import Staged
from connector_telemetry.store.pg_binary import event_rows, snapshot_rows
from connector_telemetry.store.rows import (
    EventRow,
    number_events,
    ready_rows,
    stored_event_conflict,
    stored_snapshot_conflict,
    unnumbered_times,
)
from connector_telemetry.store.sql import Connection

Conn = psycopg.Connection[Any]

_COPY_EVENTS = "COPY events (cpk, t, n, a, k, doc) FROM STDIN (FORMAT BINARY)"
_COPY_SNAPSHOTS = "COPY snapshots (cpk, t, a, doc) FROM STDIN (FORMAT BINARY)"


#: Set by ``PostgresStore._begin_batch`` before the batch's ``COPY``.
SAVEPOINT = "SAVEPOINT batch"


def _copied(conn: Conn, statement: str, data: bytes) -> bool:
    """``data`` (a binary ``COPY``'s whole input, store.pg_binary) COPYed after
    ``SAVEPOINT``: True, or False (rolled back to it, nothing of them stored) when one of
    its rows repeats a stored key."""
    try:
        with conn.cursor().copy(statement) as copy:
            copy.write(data)
    except psycopg.errors.UniqueViolation:
        conn.execute("ROLLBACK TO SAVEPOINT batch")
        return False
    return True


def claiming(heartbeat: str) -> str:
    """The first of a COPYed batch's last statements (written into ``copy_then``'s query:
    no round trip under the lock): ``heartbeat`` (``SQL.heartbeat_seen``, same parameters),
    whose ``UPDATE`` takes the connector's lock, failing with a division by zero (the whole
    query with it, nothing of it stays) when no row has the pk the batch was COPYed for
    (the connector deleted, or replaced)."""
    return f"WITH beat AS ({heartbeat} RETURNING 1) SELECT 1 / count(*) FROM beat"


def copy_then(conn: Conn, data: bytes, then: bytes) -> Staged[None]:
    """The batch's ``COPY`` (``data``: its whole input) and then the statements ``then``
    (store.pg_script), in one simple query: one implicit transaction, committed when it
    ends, in two round trips. Staged: yields once everything is sent, while the server
    runs it (api.writer's "Overlap"). Raises the first statement's error (nothing of it
    stays): ``UniqueViolation`` when a key is stored, ``DivisionByZero`` from ``claiming``.
    ``conn`` is in autocommit mode, outside any transaction."""
    with conn.lock:
        query = _COPY_EVENTS.encode() + b"; " + then
        results = conn.wait(_send_copy_then(conn.pgconn, query, data))
        if results is None:
            yield
            results = conn.wait(generators.fetch_many(conn.pgconn))
    for result in results:
        if result.status == ExecStatus.FATAL_ERROR:
            raise error_from_result(result, encoding=conn.info.encoding)


def _send_copy_then(pgconn: Any, query: bytes, data: bytes) -> Any:
    """``copy_then``'s sending, as psycopg's generators (waited for by ``conn.wait``):
    None once all is sent, or the results when the ``COPY`` failed to start."""
    pgconn.send_query(query)
    yield from generators.send(pgconn)
    started = yield from generators.fetch_many(pgconn)
    if not started or started[-1].status != ExecStatus.COPY_IN:
        return started
    yield from generators.copy_to(pgconn, data, flush=False)
    while pgconn.put_copy_end(None) == 0:
        yield Wait.W
    yield from generators.send(pgconn)
    return None


def prepared(
    events: list[NewEvent], cpk: int | None, collected_at: float
) -> tuple[list[EventRow] | None, bytes | None]:
    """What can be done before the connector's lock is taken, so that it is held for less
    time: the rows of a batch that needs nothing from the store (``rows.ready_rows``: the
    common batch) and, if the connector's pk is known (``cpk``, a cached guess that the
    caller checks against the locked row), their ``COPY`` input."""
    ready = ready_rows(events)
    if ready is None or cpk is None:
        return ready, None
    return ready, event_rows(cpk, ready, collected_at)


def number_and_dedupe(conn: Conn, cpk: int, events: list[NewEvent]) -> list[EventRow]:
    """``(t, n, k, doc)`` to insert (see ``rows.number_events``)."""
    stored: dict[float, float] = {}
    unnumbered = unnumbered_times(events)
    if unnumbered:
        found = conn.execute(
            "SELECT t, max(n) FROM events WHERE cpk=%s AND t = ANY(%s) GROUP BY t",
            (cpk, unnumbered),
        ).fetchall()
        stored = {t: top for t, top in found}
    return number_events(events, stored)


def insert_events(
    conn: Conn,
    cpk: int,
    rows: list[EventRow],
    collected_at: float,
    events: list[NewEvent],
    data: bytes | None = None,
    copy: bool = True,
) -> list[EventRow]:
    """Insert what is new (see the module doc); returns the rows that were new (the others
    were already stored with the same content: 409 if any with other content). ``data``:
    the rows' ``COPY`` input if it was built already (``prepared``); ``copy`` False: the
    ``COPY`` was tried already and met a stored key."""
    if not rows:
        return []
    if copy and _copied(conn, _COPY_EVENTS, data or event_rows(cpk, rows, collected_at)):
        return rows
    ts, ns, ks, docs = (list(column) for column in zip(*rows, strict=True))
    inserted = conn.execute(
        "INSERT INTO events (cpk, t, n, a, k, doc) SELECT %b, u.t, u.n, %b, u.k, u.doc "
        "FROM unnest(%b::float8[], %b::float8[], %b::text[], %b::bytea[]) AS u(t, n, k, doc) "
        "ON CONFLICT DO NOTHING RETURNING t, n",
        (cpk, collected_at, ts, ns, ks, docs),
        binary=True,
    ).fetchall()
    if len(inserted) == len(rows):
        return rows
    new = set(inserted)
    old = [row for row in rows if (row[0], row[1]) not in new]
    stored = {
        (t, n): doc
        for t, n, doc in conn.execute(
            "SELECT t, n, doc FROM events WHERE cpk=%b AND (t, n) IN "
            "(SELECT * FROM unnest(%b::float8[], %b::float8[]))",
            (cpk, [row[0] for row in old], [row[1] for row in old]),
            binary=True,
        )
    }
    index_of = {(ev.t, ev.n): ev.index for ev in events if ev.n is not None}
    for t, n, _, doc in old:
        if not same_content(stored[(t, n)], doc):
            raise stored_event_conflict(index_of.get((t, n), "?"), t, n)
    return [row for row in rows if (row[0], row[1]) in new]


def insert_snapshots(
    conn: Conn, cpk: int, snaps: list[NewSnapshot], collected_at: float
) -> list[NewSnapshot]:
    """Insert what is new (see the module doc); returns the snapshots that were new."""
    if not snaps:
        return []
    data = snapshot_rows(cpk, ((s.t, s.doc) for s in snaps), collected_at)
    if _copied(conn, _COPY_SNAPSHOTS, data):
        return snaps
    inserted = conn.execute(
        "INSERT INTO snapshots (cpk, t, a, doc) SELECT %b, u.t, %b, u.doc "
        "FROM unnest(%b::float8[], %b::bytea[]) AS u(t, doc) "
        "ON CONFLICT DO NOTHING RETURNING t",
        (cpk, collected_at, [s.t for s in snaps], [s.doc for s in snaps]),
        binary=True,
    ).fetchall()
    if len(inserted) == len(snaps):
        return snaps
    new = {t for (t,) in inserted}
    old = [s for s in snaps if s.t not in new]
    stored = dict(
        conn.execute(
            "SELECT t, doc FROM snapshots WHERE cpk=%b AND t = ANY(%b::float8[])",
            (cpk, [s.t for s in old]),
            binary=True,
        ).fetchall()
    )
    for snap in old:
        if not same_content(stored[snap.t], snap.doc):
            raise stored_snapshot_conflict(snap.index, snap.t)
    return [s for s in snaps if s.t in new]


def count_events(conn: Connection, cpk: int, kinds: Iterable[str]) -> None:
    """The batch's new events added to the connector's counts by kind, in one statement
    (``SQL.count_events`` per kind, as SQLite does, costs a round trip each)."""
    counted = Counter(kinds)
    if counted:
        conn.execute(
            "INSERT INTO event_counts (cpk, k, count) SELECT %b, * FROM unnest(%b::text[], "
            "%b::int8[]) ON CONFLICT (cpk, k) DO UPDATE SET count = event_counts.count + "
            "excluded.count",
            (cpk, list(counted), list(counted.values())),
        )
