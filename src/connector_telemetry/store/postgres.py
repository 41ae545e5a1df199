"""The shared store: PostgreSQL through psycopg 3, for several ``ctel serve`` processes
(on several machines) on one database. Same methods and answers as store.sqlite.

Writes take a connection from a pool and run one transaction each. Every transaction
that writes telemetry or interrupts locks its connector's row (``SELECT ... FOR UPDATE``)
before anything it reads or decides, so writers of one connector take turns across all
processes: sequence numbers for events sent without ``n``, duplicate detection and the 409
stay exact, while writers of different connectors never wait for each other. (The common
event batch COPYs its rows just before taking the lock, which the primary key makes safe:
store.pg_ingest.) Credential changes bump ``credentials_version`` in their own transaction.

Reads run on ``read_connections`` threads of their own (``read_threads``: the dispatcher
hands them the read routes, so that several reads of one process are in flight at once
and a round trip to a remote server does not stall the event loop), each with its own
autocommit connection; anything else that reads (the event loop's credential checks,
the writer thread) shares one more. With ``read_connections`` 0, reads run inline on
the event loop on that one connection, as before issue 13. Every read connection: binary
results, statements prepared (by psycopg, after a few uses) with one generic plan,
the connection replaced when it breaks. Each read sees everything committed before
it started. How both kinds of connection live through failovers: store.pg_connections.

PostgreSQL text cannot hold NUL: an id containing one names nothing here (a lookup
answers "not found" without asking the server, as SQLite would find nothing).

Events and snapshots are partitioned by month of ``t`` (store.pg_partitions).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from connector_telemetry.models import FeedFilter, FeedItem, IngestResult, NewEvent, NewSnapshot
from connector_telemetry.store import describe, pg_feed
from connector_telemetry.store import pg_ingest as ingest
from connector_telemetry.store.base import Staged, at_once, run_staged
from connector_telemetry.store.common import SQLStore, locked
from connector_telemetry.store.feed import FeedEntry
from connector_telemetry.store.fleet import has_failure
from connector_telemetry.store.pg_connections import Reader, Writers, connect, read_connection
from connector_telemetry.store.pg_partitions import Partitions, is_missing_partition
from connector_telemetry.store.pg_pipeline import Lookups, Pipeline
from connector_telemetry.store.pg_script import Script
from connector_telemetry.store.rows import (
    ConnectorPks,
    EventRow,
    dedupe_snapshots,
    newest_version,
)
from connector_telemetry.store.sql import Connection, Dialect

T = TypeVar("T")
Conn = psycopg.Connection[Any]
Params = Sequence[Any] | Mapping[str, Any]

#: Exported rows, stored unless their key already is: one statement per batch.
_IMPORT = {
    "events": "INSERT INTO events (cpk, t, n, a, k, doc) SELECT %b, * FROM unnest("
    "%b::float8[], %b::float8[], %b::float8[], %b::text[], %b::bytea[]) ON CONFLICT DO NOTHING",
    "snapshots": "INSERT INTO snapshots (cpk, t, a, doc) SELECT %b, * FROM unnest("
    "%b::float8[], %b::float8[], %b::bytea[]) ON CONFLICT DO NOTHING",
}
#: Get Events gathered into one statement (``pg_pipeline.Lookups``): each key found, by its
#: position among the keys, with its document.
EVENTS_BY_KEY = (
    "SELECT q.i, e.doc FROM unnest(%s::int8[], %s::float8[], %s::float8[])"
    " WITH ORDINALITY AS q(cpk, t, n, i) JOIN events e ON e.cpk = q.cpk AND e.t = q.t AND e.n = q.n"
)
#: Lock key (pg_advisory_xact_lock) that serializes migrations across processes ("ctelmigr").
_MIGRATION_LOCK = 0x6374656C6D696772


def _owned(conn: Conn, work: Callable[[Conn], Staged[T]]) -> Staged[T]:
    """``work``, which begins and commits its transaction; rolled back if it fails (a
    broken connection is left to the pool, which discards it)."""
    try:
        return (yield from work(conn))
    except BaseException:
        if not conn.closed and conn.pgconn.transaction_status != TransactionStatus.IDLE:
            with suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise


def _run_script(conn: Conn, script: str) -> None:
    conn.execute(script.encode())  # several statements: sent as one simple query


POSTGRES = Dialect(
    name="postgres",
    placeholder="%s",
    row_locks=True,
    schema_table_exists="SELECT 1 WHERE to_regclass('schema_version') IS NOT NULL",
    unique_violation=psycopg.errors.UniqueViolation,
    run_script=_run_script,
)


class PostgresStore(SQLStore):
    dialect = POSTGRES
    #: The common batch's heartbeat as its lock and check (``pg_ingest.claiming``; set
    #: below the class, from its ``sql``).
    _claim: ClassVar[str]
    unavailable_errors: tuple[type[Exception], ...] = (psycopg.OperationalError,)

    def __init__(
        self,
        url: str,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 4,
        pool_timeout_seconds: float = 10.0,
        statement_timeout_ms: int = 60_000,
        read_connections: int = 0,
        read_pipeline: bool = False,
    ):
        self.url = url
        self.name = describe(url)
        self.write_timeout: float | None = pool_timeout_seconds
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout = max(2, math.ceil(pool_timeout_seconds))
        # Connections: see store.pg_connections (failovers, deadlines, reads from a standby).
        self._reader = self._new_reader()
        #: the read threads' own readers (``bind_reader``), closed with the store
        self.read_threads = max(0, read_connections)
        self._bound: list[Reader] = []
        self._bound_lock = threading.Lock()
        self._local = threading.local()
        #: the hot reads on the event loop, pipelined (``read_pipeline``), else None
        self._pipeline = (
            Pipeline(url, connect=self._read_connection, name=self.name) if read_pipeline else None
        )
        self.reads_on_loop = self._pipeline is not None
        self._events_by_key = (
            None if self._pipeline is None else Lookups(self._pipeline, EVENTS_BY_KEY)
        )
        self._writers = Writers(
            url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout_seconds,
            connect_timeout=self._connect_timeout,
            configure=self._configure,
            name=self.name,
        )
        self._pks = ConnectorPks(self._connector_pk)
        self._partitions = Partitions()

    # -- connections ----------------------------------------------------------

    def _configure(self, conn: Conn) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (str(int(self._statement_timeout_ms)),),
        )

    def _read_connection(self, url: str) -> Conn:
        return read_connection(url, self._connect_timeout, self._configure)

    def _new_reader(self) -> Reader:
        return Reader(
            self.url, connect_timeout=self._connect_timeout, configure=self._configure,
            name=self.name,
        )  # fmt: skip

    def bind_reader(self) -> None:
        """The calling thread (a read thread) reads on a connection of its own from now
        on (opened at its first read)."""
        reader = self._new_reader()
        with self._bound_lock:
            self._bound.append(reader)
        self._local.reader = reader

    def _connect(self) -> Conn:
        return connect(self.url, self._connect_timeout, self._configure)

    def _read(self, query: str, args: Params | None = None) -> psycopg.Cursor[Any]:
        """One statement on the read connection, with binary results
        (``pg_connections.Reader.execute``: a connection lost since the last read is
        replaced and the statement sent again, once)."""
        reader: Reader = getattr(self._local, "reader", None) or self._reader
        return reader.execute(query, args, binary=True)

    async def _fetch(self, query: str, args: tuple[Any, ...]) -> list[Any]:
        """A hot read on the event loop's pipeline (``store.pg_pipeline``)."""
        if self._pipeline is None:
            return self._read(query, args).fetchall()
        return await self._pipeline.fetch(query, args)

    async def _fetch_event(self, cpk: int, keys: list[tuple[float, float]]) -> bytes | None:
        if self._events_by_key is None:
            return await super()._fetch_event(cpk, keys)
        return await self._events_by_key.get([(cpk, t, n) for t, n in keys])  # type: ignore[no-any-return]

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled connection to a writable host (autocommit: callers open their
        transactions), by the write's deadline; 503 past it."""
        waited = time.perf_counter()
        with self._writers.connection() as conn:
            began = time.perf_counter()
            self.observe("pool", began - waited)
            try:
                yield conn
            finally:
                self.observe("write", time.perf_counter() - began)

    def pool_state(self) -> tuple[int, int, int] | None:
        return self._writers.state()

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _telemetry_write(
        self, table: str, ts: Iterable[float], work: Callable[[Conn], T], own: bool = False
    ) -> T:
        """``work`` in one transaction, once the partitions for ``ts`` exist (``own``:
        ``work`` begins and commits it itself, ``_begin_batch`` ... ``_commit_batch``)."""
        return run_staged(self._telemetry_staged(table, ts, at_once(work), own))

    def _telemetry_staged(
        self, table: str, ts: Iterable[float], work: Callable[[Conn], Staged[T]], own: bool
    ) -> Staged[T]:
        """``_telemetry_write`` of a staged ``work``. Another process may drop a month this
        one believes exists (purge): then it is made again and the transaction repeated."""
        ts = list(ts)
        attempt = 0
        while True:
            attempt += 1
            with self._connection() as conn:
                self._partitions.ensure(conn, table, ts)
                try:
                    if own:
                        return (yield from _owned(conn, work))
                    with conn.transaction():
                        return (yield from work(conn))
                except psycopg.errors.CheckViolation as exc:
                    if attempt >= 3 or not is_missing_partition(exc):
                        raise
                    self._partitions.forget()
                except psycopg.errors.DeadlockDetected:
                    # (a batch COPYed before its lock met one that holds the lock and
                    # waits for its rows: PostgreSQL rolled one back whole; store.pg_ingest)
                    if attempt >= 3:
                        raise

    def _begin_batch(self, conn: Conn, account_id: str, connector_id: str) -> int:
        """An ingest transaction's start in one round trip (a pipeline): ``BEGIN``, the
        connector's row lock (``_lock_connector``) and the savepoint the batch's ``COPY``
        may roll back to (store.pg_ingest)."""
        row = None
        if "\x00" not in connector_id:
            with conn.pipeline():
                conn.execute("BEGIN")
                cur = conn.execute(self.sql.lock_connector, (account_id, connector_id))
                conn.execute(ingest.SAVEPOINT)
                row = cur.fetchone()
        return locked(row, connector_id)

    @contextmanager
    def _commit_batch(self, conn: Conn) -> Iterator[None]:
        """What follows the batch's rows (counts, heartbeat, feed) and ``COMMIT``, sent
        together (a pipeline): one round trip, however many statements."""
        with conn.pipeline():
            yield
            conn.execute("COMMIT")

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.close()
        self._reader.close()
        with self._bound_lock:
            bound, self._bound = self._bound, []
        for reader in bound:
            reader.close()
        self._writers.close()

    # -- schema ---------------------------------------------------------------

    @contextmanager
    def _migration(self) -> Iterator[Conn]:
        """Several processes may migrate at once: they take turns on an advisory lock.
        An unreachable server raises ``psycopg.OperationalError`` (``store.problems``
        words it for the CLI)."""
        conn = self._connect()
        with conn, conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # a migration takes its time
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            yield conn
        self._partitions.forget()

    def check_writable(self) -> None:
        """Privileges and read-only transactions (a standby) are checked when a statement
        starts, so an update that matches no row tells without writing anything."""
        with self._write() as conn:
            conn.execute("UPDATE schema_version SET version = version WHERE false")

    def hold_reads(self, on_begin: Callable[[], None]) -> None:
        """Nothing to gain: a PostgreSQL statement costs a round trip either way."""

    def end_reads(self) -> None:
        pass

    # -- telemetry events -----------------------------------------------------

    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult:
        return run_staged(self.record_events_staged(account_id, connector_id, events, collected_at))

    def record_events_staged(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> Staged[IngestResult]:
        """Staged (``Store.record_events_staged``): the rows, their ``COPY`` input and the
        statements that follow it are built before the first ``yield``; a common batch
        yields again while PostgreSQL runs ``copy_then``'s query."""
        newest = newest_version(events)
        failing = has_failure(events)  # the fleet summary's newest failure (issue 9)

        def last_statements(
            conn: Connection, cpk: int, rows: list[EventRow], new: list[EventRow], beat: str
        ) -> None:
            """Heartbeat (``beat``), counts, failure, feed."""
            self._heartbeat(conn, cpk, newest, collected_at, beat)
            self._count_events(conn, cpk, (k for _, _, k, _ in new))
            if failing:
                self._keep_failure(conn, cpk, rows, 0, 1, 2)
            a = collected_at
            self._feed(conn, account_id, cpk, "event", [(t, n, a, k) for t, n, k, _ in new])

        guess = self._pks.cached(account_id, connector_id)
        ready, data = ingest.prepared(events, guess, collected_at)
        then = None  # a common batch, its connector's pk known: the statements after its COPY
        if data is not None and ready is not None and guess is not None:
            last = Script()
            last_statements(last, guess, ready, ready, self._claim)
            then = last.text()
        yield  # prepared: what follows uses the database

        def work(conn: Conn) -> Staged[IngestResult]:
            copy = True  # (False: the COPY met a stored key, insert_events does without)
            if data is not None and then is not None:
                # the COPY, then the last statements (the first takes the lock) in one
                # query (store.pg_ingest's doc)
                try:
                    yield from ingest.copy_then(conn, data, then)
                    return IngestResult(accepted=len(events), duplicates=0)
                except psycopg.errors.UniqueViolation:
                    copy = False  # a key is stored: the usual way, nothing of the COPY left
                except psycopg.errors.DivisionByZero:
                    pass  # the connector was replaced: the usual way
            cpk = self._begin_batch(conn, account_id, connector_id)
            self._pks.remember(account_id, connector_id, cpk)
            rows = ready if ready is not None else ingest.number_and_dedupe(conn, cpk, events)
            new = ingest.insert_events(
                conn, cpk, rows, collected_at, events, data if cpk == guess else None, copy
            )
            with self._commit_batch(conn):
                last_statements(conn, cpk, rows, new, self.sql.heartbeat_seen)
            duplicates = len(events) - len(new)
            return IngestResult(accepted=len(events) - duplicates, duplicates=duplicates)

        return (yield from self._telemetry_staged("events", (ev.t for ev in events), work, True))

    # -- telemetry snapshots --------------------------------------------------

    def record_snapshots(
        self,
        account_id: str,
        connector_id: str,
        snapshots: list[NewSnapshot],
        collected_at: float,
    ) -> IngestResult:
        newest = newest_version(snapshots)

        def work(conn: Conn) -> IngestResult:
            cpk = self._begin_batch(conn, account_id, connector_id)
            unique = dedupe_snapshots(snapshots)
            new = ingest.insert_snapshots(conn, cpk, unique, collected_at)
            duplicates = len(snapshots) - len(new)
            with self._commit_batch(conn):
                self._heartbeat(conn, cpk, newest, collected_at)
                self._keep_health(conn, cpk, snapshots)
                a = collected_at
                self._feed(conn, account_id, cpk, "snapshot", [(s.t, 0.0, a, None) for s in new])
            return IngestResult(accepted=len(snapshots) - duplicates, duplicates=duplicates)

        return self._telemetry_write("snapshots", (snap.t for snap in snapshots), work, own=True)

    # -- the feed: a row per batch (store.pg_feed) ---------------------------------

    def _feed(
        self, conn: Any, account_id: str, cpk: int, kind: str, items: Sequence[FeedEntry]
    ) -> None:
        """Append a batch's new items to the account's feed, as one row. Call it last in
        the transaction: it holds the account's head locked until commit."""
        if items:
            pg_feed.append(conn, account_id, cpk, kind, items)

    def _count_events(self, conn: Any, cpk: int, kinds: Iterable[str]) -> None:
        ingest.count_events(conn, cpk, kinds)

    def _read_feed(
        self, account_id: str, after: int, upto: int, which: Sequence[FeedFilter], limit: int
    ) -> tuple[list[FeedItem], int]:
        return pg_feed.read(self._read, account_id, after, upto, which, limit)

    # -- retention and import -------------------------------------------------

    def _drop_telemetry_before(self, before_t: float) -> int:
        """Whole months before ``before_t`` are detached and dropped (cheap, however
        large; counted)."""
        with self._connection() as conn:
            return self._partitions.drop_below(conn, before_t)

    def _import(
        self, account_id: str, connector_id: str, table: str, rows: Sequence[tuple[Any, ...]]
    ) -> int:
        def work(conn: Conn) -> int:
            cpk = self._lock_connector(conn, account_id, connector_id)
            if not rows:
                return 0
            columns = [list(column) for column in zip(*rows, strict=True)]
            added = conn.execute(_IMPORT[table], (cpk, *columns)).rowcount
            if table == "events":  # (t, n, a, k, doc): the fleet summary's newest failure
                self._keep_failure(conn, cpk, rows, 0, 1, 3)
                conn.execute(self.sql.recount_events, (cpk,))
            return int(added)

        return self._telemetry_write(table, (row[0] for row in rows), work)


PostgresStore._claim = ingest.claiming(PostgresStore.sql.heartbeat_seen)
