"""PostgreSQL's time partitions of ``events`` and ``snapshots`` (used by store.postgres).

Both tables are range-partitioned on ``t``: one partition per calendar month (UTC)
from 2000 to 2099, created when the first row of that month arrives, plus two
permanent catch-alls from the schema (``*_before_2000``, ``*_from_2100``) for any
other time. A month is created as a plain table and then ATTACHed, which locks the
parent only SHARE UPDATE EXCLUSIVE: readers and other writers never wait for it.
Purge DETACHes whole months CONCURRENTLY and drops them, again without blocking
anyone. Creation and purge serialize on one advisory lock, so processes never race
on a name; a process whose cache of existing months went stale (another dropped
one) gets "no partition found", and the store retries after ``forget()``.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

#: Months get their own partitions in [MONTHS_FROM, MONTHS_TO): 2000-01-01 to 2100-01-01.
MONTHS_FROM = 946_684_800
MONTHS_TO = 4_102_444_800
TABLES = ("events", "snapshots")
#: pg_advisory_lock key held while partitions are created or dropped ("ctelpart").
LOCK_KEY = 0x6374656C70617274
_MONTH_NAME = re.compile(r"(events|snapshots)_(\d{4})_(\d{2})\Z")


def month_of(t: float) -> tuple[int, int] | None:
    """The (year, month) whose partition holds ``t``, or None for the catch-alls."""
    if not MONTHS_FROM <= t < MONTHS_TO:
        return None
    # floor first: bounds are whole seconds, and a float this close to the next month
    # must not be rounded into it.
    day = datetime.fromtimestamp(math.floor(t), UTC)
    return day.year, day.month


def months_of(ts: Iterable[float]) -> set[tuple[int, int]]:
    """The months of every ``t`` (the catch-alls left out). A batch usually spans
    minutes: when its first and last month agree, that is the answer."""
    inside = [t for t in ts if MONTHS_FROM <= t < MONTHS_TO]
    if not inside:
        return set()
    first, last = month_of(min(inside)), month_of(max(inside))
    if first == last and first is not None:
        return {first}
    return {m for m in map(month_of, set(inside)) if m is not None}


def bounds(year: int, month: int) -> tuple[int, int]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def partition_name(table: str, year: int, month: int) -> str:
    return f"{table}_{year:04d}_{month:02d}"


def parse_name(name: str) -> tuple[str, int, int] | None:
    found = _MONTH_NAME.match(name)
    if found is None:
        return None
    return found.group(1), int(found.group(2)), int(found.group(3))


def is_missing_partition(exc: psycopg.Error) -> bool:
    """Whether an insert failed because its month's partition is gone (dropped by a
    purge in another process after this one last looked)."""
    return isinstance(exc, psycopg.errors.CheckViolation) and "no partition of relation" in str(exc)


class Partitions:
    """Which month partitions exist (cached per process), and making more of them."""

    def __init__(self) -> None:
        self._known: set[str] | None = None
        self._lock = threading.Lock()

    def forget(self) -> None:
        self._known = None

    def ensure(self, conn: psycopg.Connection[Any], table: str, ts: Iterable[float]) -> None:
        """Make sure every ``t`` has its month's partition; call outside a transaction.

        Creation is its own short transaction, before the ingest that needs it, so the
        ingest's own locks are never held while waiting for the partition lock."""
        wanted = {partition_name(table, *m) for m in months_of(ts)}
        with self._lock:
            if self._known is None:
                self._known = attached(conn)
            missing = wanted - self._known
            if missing:
                self._add(conn, table, missing)

    def _add(self, conn: psycopg.Connection[Any], table: str, missing: set[str]) -> None:
        with _locked(conn):
            finish_detaches(conn)
            known = attached(conn)
            new = sorted(missing - known)
            with conn.transaction():
                for name in new:
                    _create(conn, table, name)
            self._known = known | set(new)

    def drop_below(self, conn: psycopg.Connection[Any], before_t: float) -> int:
        """Detach and drop every month partition entirely before ``before_t``; returns
        the number of rows they held. ``conn`` must be in autocommit mode."""
        gone = 0
        with _locked(conn):
            finish_detaches(conn)
            for name in sorted(attached(conn)):
                table, year, month = parse_name(name) or ("", 0, 0)
                if bounds(year, month)[1] > before_t:
                    continue
                part = sql.Identifier(name)
                conn.execute(
                    sql.SQL("ALTER TABLE {table} DETACH PARTITION {part} CONCURRENTLY").format(
                        table=sql.Identifier(table), part=part
                    )
                )
                counted = conn.execute(sql.SQL("SELECT count(*) FROM {part}").format(part=part))
                gone += int((counted.fetchone() or (0,))[0])
                conn.execute(sql.SQL("DROP TABLE {part}").format(part=part))
                if self._known is not None:
                    self._known.discard(name)
        return gone


@contextmanager
def _locked(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The partition lock, for the session (DETACH CONCURRENTLY cannot run in a
    transaction block, so a transaction-scoped lock would not do)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _create(conn: psycopg.Connection[Any], table: str, name: str) -> None:
    """A month partition: a plain table first, then attached (see the module doc)."""
    _, year, month = parse_name(name) or (table, 0, 0)
    lo, hi = bounds(year, month)
    part, parent = sql.Identifier(name), sql.Identifier(table)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {part} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING INDEXES)"
        ).format(part=part, parent=parent)
    )
    conn.execute(
        sql.SQL(
            "ALTER TABLE {parent} ATTACH PARTITION {part} FOR VALUES FROM ({lo}) TO ({hi})"
        ).format(parent=parent, part=part, lo=sql.Literal(lo), hi=sql.Literal(hi))
    )


def attached(conn: psycopg.Connection[Any]) -> set[str]:
    """The month partitions currently attached (not being detached)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = ANY(ARRAY[to_regclass('events'), to_regclass('snapshots')]) "
        "AND NOT i.inhdetachpending"
    ).fetchall()
    return {str(name) for (name,) in rows if parse_name(str(name))}


def finish_detaches(conn: psycopg.Connection[Any]) -> None:
    """Complete a purge that was interrupted between DETACH CONCURRENTLY and DROP: a
    half-detached month is finalized, and it and any detached one left are dropped
    (their rows were being purged). Hold the partition lock."""
    pending = conn.execute(
        "SELECT p.relname, c.relname FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE i.inhparent = ANY(ARRAY[to_regclass('events'), to_regclass('snapshots')]) "
        "AND i.inhdetachpending"
    ).fetchall()
    for table, name in pending:
        conn.execute(
            sql.SQL("ALTER TABLE {table} DETACH PARTITION {part} FINALIZE").format(
                table=sql.Identifier(table), part=sql.Identifier(name)
            )
        )
    loose = conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
        "AND relname ~ '^(events|snapshots)_[0-9]{4}_[0-9]{2}$' "
        "AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass('events'))"
    ).fetchall()
    for (name,) in loose:
        conn.execute(sql.SQL("DROP TABLE {part}").format(part=sql.Identifier(name)))
