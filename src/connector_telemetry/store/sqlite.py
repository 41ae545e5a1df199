"""The embedded store: one SQLite file in WAL mode.

Exactly one writer connection per process (guarded by a lock; the HTTP layer sends every
write to one thread), whose turns across processes are ``WriterTurn``'s (store.sqlite_turn),
and reader connections: the event loop's reads share one read transaction
(``HeldReader``, store.sqlite_held), other threads read in autocommit mode. The queries
both stores share are in store.sql and store.common; what is here is SQLite's own:
connections, and ingest and import as batch inserts (``executemany``) under a savepoint.
"""

from __future__ import annotations

import mmap
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from connector_telemetry.errors import ApiError, DiskFull
from connector_telemetry.models import (
    FeedFilter,
    FeedItem,
    IngestResult,
    NewEvent,
    NewSnapshot,
    same_content,
)
from connector_telemetry.store import sqlite_feed
from connector_telemetry.store.common import SQLStore
from connector_telemetry.store.fleet import has_failure
from connector_telemetry.store.rows import (
    ConnectorPks,
    dedupe_snapshots,
    newest_version,
    number_events,
    ready_rows,
    stored_event_conflict,
    stored_snapshot_conflict,
    unnumbered_times,
)
from connector_telemetry.store.sql import Cursor, Dialect
from connector_telemetry.store.sqlite_held import HeldReader
from connector_telemetry.store.sqlite_turn import WriterTurn

EventRow = tuple[int, float, float, float, str, bytes]
#: Exported rows, stored unless their key already is.
_IMPORT = {
    "events": "INSERT OR IGNORE INTO events (cpk, t, n, a, k, doc) VALUES (?, ?, ?, ?, ?, ?)",
    "snapshots": "INSERT OR IGNORE INTO snapshots (cpk, t, a, doc) VALUES (?, ?, ?, ?)",
}


class _Rows:
    """Rows already fetched, as a cursor's ``fetchone``/``fetchall`` give them."""

    rowcount = -1

    def __init__(self, rows: list[Any]):
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    row_locks=False,
    schema_table_exists="SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'",
    unique_violation=sqlite3.IntegrityError,
    run_script=_run_script,
)


def _disk_full(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name == "SQLITE_FULL" or "database or disk is full" in str(exc)


class SQLiteStore(SQLStore):
    dialect = SQLITE
    unavailable_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    write_timeout: float | None = None

    def refusal(self, exc: Exception) -> ApiError:
        if _disk_full(exc):
            return DiskFull(
                f"the disk holding the database is full ({exc}); nothing of this request "
                "was stored: retry once space is freed"
            )
        return super().refusal(exc)

    def __init__(
        self,
        path: str,
        *,
        busy_timeout_ms: int = 10_000,
        synchronous: str = "FULL",
        secure_delete: str | None = None,
    ):
        self.path = self.name = path
        self._busy_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._secure_delete = secure_delete  # None: the SQLite build's default
        self._write_lock = threading.Lock()
        self._writer = self._connect()  # creates the file
        self._turn = WriterTurn(path, busy_timeout_ms / 1000)
        self._reader: sqlite3.Connection | None = None
        self._held: HeldReader | None = None
        self._held_thread = -1
        self._data_version = -1
        self._pks = ConnectorPks(self._connector_pk)
        self._credentials_version = 0
        self._feed_version = -1
        self._fresh: sqlite3.Connection | None = None  # test mode's reads (``_read_fresh``)
        self._fresh_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if self._secure_delete is not None:
            conn.execute(f"PRAGMA secure_delete = {self._secure_delete}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")
        return conn

    @property
    def reader(self) -> sqlite3.Connection:
        held = self._held
        if held is not None and threading.get_ident() == self._held_thread:
            return held.get()
        if self._reader is None:
            self._reader = self._connect_reader()
        return self._reader

    def _read(self, query: str, args: Any = ()) -> sqlite3.Cursor:
        return self.reader.execute(query, args)

    @property
    def _execute(self) -> Callable[..., sqlite3.Cursor]:
        held = self._held  # the reader property, inlined: this is the hot path
        if held is not None and threading.get_ident() == self._held_thread:
            return held.get().execute
        return self.reader.execute

    def hold_reads(self, on_begin: Callable[[], None]) -> None:
        """From now on, reads on the calling thread (the event loop's) go through a
        ``HeldReader``; ``on_begin`` is called whenever it begins a read transaction, and
        should arrange for ``end_reads`` to be called soon. Other threads (the writer's
        read-modify-write steps) keep reading in autocommit mode on their own connection."""
        conn = self._connect_reader()
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()  # the -shm file exists
        try:
            with open(self.path + "-shm", "rb") as shm_file:
                shm = mmap.mmap(shm_file.fileno(), 0, prot=mmap.PROT_READ)
        except (OSError, ValueError):  # no WAL index to watch: stay in autocommit mode
            conn.close()
            return
        self._held = HeldReader(conn, shm, on_begin)
        self._held_thread = threading.get_ident()

    def end_reads(self) -> None:
        if self._held is not None:
            self._held.end()

    def _read_fresh(self, query: str, args: Any = ()) -> Cursor:
        """On a connection of its own in autocommit mode, whichever thread asks, so that
        what any process committed before is seen (the event loop's reads are held)."""
        with self._fresh_lock:
            if self._fresh is None:
                self._fresh = self._connect_reader()
            rows = self._fresh.execute(query, args).fetchall()
        return _Rows(rows)

    def close(self) -> None:
        if self._fresh is not None:
            self._fresh.close()
            self._fresh = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                conn.close()
        self._reader = None
        if self._held is not None:
            self._held.close()
            self._held = None
        self._turn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._writer
            waited = time.perf_counter()
            self._turn.acquire()
            began = time.perf_counter()
            self.observe("writer_turn", began - waited)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:  # the body, or COMMIT itself, failed
                        conn.execute("ROLLBACK")
            finally:
                self._turn.release()
                self.observe("write", time.perf_counter() - began)

    _migration = _write

    def check_writable(self) -> None:
        """A file SQLite opened read-only (its mode, its directory) fails only at the first
        page written: write one, and roll back."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("UPDATE schema_version SET version = version")
            finally:
                conn.execute("ROLLBACK")

    def credentials_version(self) -> int:
        """The credentials version, re-read only when the file changed at all
        (``PRAGMA data_version`` moves on every commit by another connection)."""
        (data_version,) = self._read("PRAGMA data_version").fetchone()
        if data_version != self._data_version:
            (self._credentials_version,) = self._read(self.sql.credentials_version).fetchone()
            self._data_version = data_version
        return int(self._credentials_version)

    # -- telemetry events -----------------------------------------------------

    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult:
        # What needs nothing from the database is built before the write lock, which the
        # server's workers take in turn: the lock is the ingest bottleneck.
        newest = newest_version(events)
        guess = self._pks.cached(account_id, connector_id)
        ready = None if guess is None else ready_rows(events)
        prebuilt: list[EventRow] | None = None
        packed: bytes | None = None  # the feed row's keys, if known before the lock
        if guess is not None and ready is not None:
            a = collected_at
            prebuilt = [(guess, t, n, a, k, doc) for t, n, k, doc in ready]
            packed = sqlite_feed.pack(ready, 0, 1, 2)
        failing = has_failure(events)  # the fleet summary's newest failure (issue 9)
        with self._write() as conn:
            cpk = self._ingest_lock(conn, account_id, connector_id)
            if prebuilt is not None and cpk == guess:
                rows = prebuilt
            else:
                rows = self._number_and_dedupe(conn, cpk, events, collected_at)
            duplicates = len(events) - len(rows)
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
                new = rows
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                new = self._insert_checking(conn, rows, events)
                duplicates += len(rows) - len(new)
            conn.execute("RELEASE batch")
            self._count_events(conn, cpk, (row[4] for row in new))
            self._heartbeat(conn, cpk, newest, collected_at)
            if failing:
                self._keep_failure(conn, cpk, rows, 1, 2, 4)
            if packed is None or new is not prebuilt:
                packed = sqlite_feed.pack(new, 1, 2, 4)
            self._append(conn, account_id, cpk, "event", len(new), collected_at, packed)
            return IngestResult(accepted=len(events) - duplicates, duplicates=duplicates)

    def _ingest_lock(self, conn: sqlite3.Connection, account_id: str, connector_id: str) -> int:
        """The connector's pk, read inside the write transaction (so current); remembered
        as the next batch's guess for rows built before the lock."""
        cpk = self._lock_connector(conn, account_id, connector_id)
        self._pks.remember(account_id, connector_id, cpk)
        return cpk

    @staticmethod
    def _number_and_dedupe(
        conn: sqlite3.Connection, cpk: int, events: list[NewEvent], a: float
    ) -> list[EventRow]:
        """Rows to insert (see ``rows.number_events``)."""
        stored: dict[float, float] = {}
        for t in unnumbered_times(events):
            (top,) = conn.execute(
                "SELECT max(n) FROM events WHERE cpk=? AND t=?", (cpk, t)
            ).fetchone()
            if top is not None:
                stored[t] = top
        return [(cpk, t, n, a, k, doc) for t, n, k, doc in number_events(events, stored)]

    def _insert_checking(
        self, conn: sqlite3.Connection, rows: list[EventRow], events: list[NewEvent]
    ) -> list[EventRow]:
        """The slow path, taken when part of a batch is already stored: the rows that
        were new."""
        index_of = {(ev.t, ev.n): ev.index for ev in events if ev.n is not None}
        new = []
        for row in rows:
            cur = conn.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)", row)
            if cur.rowcount == 1:
                new.append(row)
                continue
            (stored,) = conn.execute(self.sql.get_event, row[:3]).fetchone()
            if not same_content(stored, row[5]):
                raise stored_event_conflict(index_of.get((row[1], row[2]), "?"), row[1], row[2])
        return new

    # -- telemetry snapshots --------------------------------------------------

    def record_snapshots(
        self,
        account_id: str,
        connector_id: str,
        snapshots: list[NewSnapshot],
        collected_at: float,
    ) -> IngestResult:
        unique = dedupe_snapshots(snapshots)
        seen = {snap.t: snap for snap in unique}
        newest = newest_version(snapshots)
        packed = sqlite_feed.pack([(snap.t,) for snap in unique], 0, None, None)
        with self._write() as conn:
            cpk = self._ingest_lock(conn, account_id, connector_id)
            rows = [(cpk, snap.t, collected_at, snap.doc) for snap in unique]
            duplicates = len(snapshots) - len(rows)
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany("INSERT INTO snapshots VALUES (?, ?, ?, ?)", rows)
                new = rows
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                new = []
                for row in rows:
                    cur = conn.execute("INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?)", row)
                    if cur.rowcount == 1:
                        new.append(row)
                        continue
                    (stored,) = conn.execute(self.sql.get_snapshot, row[:2]).fetchone()
                    if not same_content(stored, row[3]):
                        raise stored_snapshot_conflict(seen[row[1]].index, row[1]) from None
                    duplicates += 1
            conn.execute("RELEASE batch")
            self._heartbeat(conn, cpk, newest, collected_at)
            self._keep_health(conn, cpk, snapshots)
            if new is not rows:  # some were stored already
                packed = sqlite_feed.pack(new, 1, None, None)
            self._append(conn, account_id, cpk, "snapshot", len(new), collected_at, packed)
            return IngestResult(accepted=len(snapshots) - duplicates, duplicates=duplicates)

    # -- the feed: a row per batch (store.sqlite_feed) ---------------------------------

    def _append(
        self, conn: Any, account_id: str, cpk: int, kind: str, count: int, a: float, keys: bytes
    ) -> None:
        """Append a batch's ``count`` new items, arrived at ``a``, to the account's feed, as
        one row; ``keys``: theirs, packed (``sqlite_feed.pack``, before the write lock where
        ingest can: ~0.2 ms a batch of 1000 that the workers' turns no longer wait for)."""
        if count:
            (head,) = conn.execute(self.sql.bump_feed_head, (account_id, count)).fetchone()
            conn.execute(
                sqlite_feed.APPEND, sqlite_feed.row(account_id, head, cpk, kind, count, a, keys)
            )

    def _read_feed(
        self, account_id: str, after: int, upto: int, which: Sequence[FeedFilter], limit: int
    ) -> tuple[list[FeedItem], int]:
        return sqlite_feed.read(self._read, account_id, after, upto, which, limit)

    def feed_changed(self) -> bool:
        """``PRAGMA data_version`` moves on every commit by another connection (any
        process's writer, this one's included): unchanged, nothing was committed."""
        (version,) = self._read("PRAGMA data_version").fetchone()
        if version == self._feed_version:
            return False
        self._feed_version = version
        return True

    # -- import ----------------------------------------------------------------

    def _import(
        self, account_id: str, connector_id: str, table: str, rows: Sequence[tuple[Any, ...]]
    ) -> int:
        with self._write() as conn:
            cpk = self._lock_connector(conn, account_id, connector_id)
            before = conn.total_changes
            conn.executemany(_IMPORT[table], [(cpk, *row) for row in rows])
            added = conn.total_changes - before  # counted before the summary's own changes
            if table == "events":  # (t, n, a, k, doc): the fleet summary's newest failure
                self._keep_failure(conn, cpk, rows, 0, 1, 3)
                conn.execute(self.sql.recount_events, (cpk,))
            return added
