"""The shared store: PostgreSQL through psycopg 3, for several ``ctel serve`` processes
(on several machines) on one database. Same methods and answers as store.sqlite.

Writes take a connection from a pool and run one transaction each. Every transaction
that writes telemetry or interrupts first locks its connector's row (``SELECT ... FOR
UPDATE``), so writers of one connector take turns across all processes: sequence
numbers for events sent without ``n``, duplicate detection and the 409 stay exact,
while writers of different connectors never wait for each other. Credential changes
bump ``credentials_version`` in their own transaction.

Reads run inline on the event loop, on one dedicated autocommit connection: binary
results, statements prepared (by psycopg, after a few uses) with one generic plan,
the connection replaced when it breaks. Each read sees everything committed before
it started.

PostgreSQL text cannot hold NUL: an id containing one names nothing here (a lookup
answers "not found" without asking the server, as SQLite would find nothing).

Events and snapshots are partitioned by month of ``t`` (store.pg_partitions).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from connector_telemetry.errors import ConfigError, Conflict, NotFound
from connector_telemetry.service.models import (
    Connector,
    EventMeta,
    FleetRow,
    IngestResult,
    Interrupt,
    NewEvent,
    NewSnapshot,
    Token,
    User,
)
from connector_telemetry.store import describe, fleet
from connector_telemetry.store import pg_ingest as ingest
from connector_telemetry.store.pg_partitions import Partitions, is_missing_partition
from connector_telemetry.store.rows import (
    CONNECTOR_COLUMNS,
    ConnectorPks,
    changed_connector,
    connector_from_row,
    connector_update_sql,
    connector_values,
    dedupe_snapshots,
)
from connector_telemetry.store.sqlite import SchemaTooNew

T = TypeVar("T")
Conn = psycopg.Connection[Any]
Params = Sequence[Any] | Mapping[str, Any]

_CONNECTOR_VALUES = ", ".join(["%s"] * 16)
#: Lock key (pg_advisory_xact_lock) that serializes migrations across processes ("ctelmigr").
_MIGRATION_LOCK = 0x6374656C6D696772
#: After the reader failed to connect, fail fast for this long instead of retrying on
#: every request (a read runs on the event loop).
_RECONNECT_PAUSE = 1.0


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("connector_telemetry.store") / "pg_migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


SCHEMA_VERSION = _migrations()[-1][0]


class PostgresStore:
    unavailable_errors: tuple[type[Exception], ...] = (psycopg.OperationalError,)
    known_schema_version = SCHEMA_VERSION

    def __init__(
        self,
        url: str,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 4,
        pool_timeout_seconds: float = 10.0,
        statement_timeout_ms: int = 60_000,
    ):
        self.url = url
        self.name = describe(url)
        self._statement_timeout_ms = statement_timeout_ms
        self._connect_timeout = max(2, math.ceil(pool_timeout_seconds))
        self._reader: Conn | None = None
        self._reader_lock = threading.Lock()
        self._reader_failed_at = -math.inf
        self._local = threading.local()  # each thread's cursor on the reader
        # Opened on the first write: a process that only reads needs no pool.
        self._pool = ConnectionPool(
            url,
            min_size=pool_min_size,
            max_size=max(pool_min_size, pool_max_size),
            timeout=pool_timeout_seconds,
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            name="ctel-writers",
            open=False,
        )
        self._pool_lock = threading.Lock()
        self._pool_open = False
        self._pks = ConnectorPks(self._read_pk)
        self._partitions = Partitions()

    # -- connections ----------------------------------------------------------

    def _configure(self, conn: Conn) -> None:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (str(int(self._statement_timeout_ms)),),
        )

    def _connect(self) -> Conn:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout)
        self._configure(conn)
        return conn

    @property
    def reader(self) -> Conn:
        conn = self._reader
        if conn is None or conn.closed:
            conn = self._reopen_reader()
        return conn

    def _reopen_reader(self) -> Conn:
        with self._reader_lock:
            conn = self._reader
            if conn is not None and not conn.closed:
                return conn
            if time.monotonic() - self._reader_failed_at < _RECONNECT_PAUSE:
                raise psycopg.OperationalError(f"{self.name} is unreachable; retrying shortly")
            try:
                self._reader = conn = self._connect()
                # Every read is a short indexed lookup: plan once per statement. (Left to
                # itself, PostgreSQL re-plans each call on partitioned tables, which
                # doubles the latency of Get Event.)
                conn.execute("SET plan_cache_mode = force_generic_plan")
            except psycopg.OperationalError:
                self._reader_failed_at = time.monotonic()
                raise
            return conn

    def _read(
        self, query: str, args: Params | None = None, *, binary: bool = False
    ) -> psycopg.Cursor[Any]:
        """One statement on the reader, through this thread's cursor (its results must
        be consumed before the thread's next read). A connection lost since the last
        read (a server restart, a failover, an idle timeout) is replaced and the
        statement sent again, once: reads are idempotent."""
        cur = self._cursor()
        try:
            return cur.execute(query, args, binary=binary)
        except psycopg.OperationalError:
            if not cur.connection.closed:
                raise
        return self._cursor().execute(query, args, binary=binary)

    def _cursor(self) -> psycopg.Cursor[Any]:
        cur: psycopg.Cursor[Any] | None = getattr(self._local, "cursor", None)
        if cur is None or cur.connection is not self._reader or cur.connection.closed:
            cur = self._local.cursor = self.reader.cursor()
        return cur

    def _read_pk(self, account_id: str, connector_id: str) -> int:
        if "\x00" in connector_id:
            raise NotFound(f"connector {connector_id} not found")
        row = self._read(
            "SELECT pk FROM connectors WHERE account_id=%s AND id=%s", (account_id, connector_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"connector {connector_id} not found")
        return int(row[0])

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled connection (autocommit: callers open their transactions)."""
        if not self._pool_open:
            with self._pool_lock:
                if not self._pool_open:
                    self._pool.open()
                    self._pool_open = True
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        with self._connection() as conn, conn.transaction():
            yield conn

    def _telemetry_write(self, table: str, ts: Iterable[float], work: Callable[[Conn], T]) -> T:
        """``work`` in one transaction, once the partitions for ``ts`` exist. Another
        process may drop a month this one believes exists (purge): then it is made
        again and the transaction repeated."""
        ts = list(ts)
        attempt = 0
        while True:
            attempt += 1
            with self._connection() as conn:
                self._partitions.ensure(conn, table, ts)
                try:
                    with conn.transaction():
                        return work(conn)
                except psycopg.errors.CheckViolation as exc:
                    if attempt >= 3 or not is_missing_partition(exc):
                        raise
                    self._partitions.forget()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._pool_open:
            self._pool.close()
            self._pool_open = False

    # -- schema ---------------------------------------------------------------

    @staticmethod
    def _schema_version(conn: Conn) -> int:
        row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        got = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(got[0] or 0) if got else 0

    def schema_version(self) -> int:
        row = self._read("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if row is None or not row[0]:
            return 0
        got = self._read("SELECT max(version) FROM schema_version").fetchone()
        return int(got[0] or 0) if got else 0

    def migrate(self) -> int:
        """Apply every migration newer than the database's schema; return the version.
        Several processes may call this at once: they take turns on an advisory lock."""
        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            raise ConfigError(f"cannot connect to {self.name}: {exc}") from exc
        with conn, conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # a migration takes its time
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            current = self._schema_version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.name} has schema version {current}, newer than this ctel "
                    f"knows ({SCHEMA_VERSION}); upgrade connector-telemetry"
                )
            for version, script in _migrations():
                if version > current:
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        self._partitions.forget()
        return max(current, SCHEMA_VERSION)

    def ping(self) -> None:
        self._read("SELECT 1").fetchone()

    def is_empty(self) -> bool:
        return self._read("SELECT 1 FROM accounts LIMIT 1").fetchone() is None

    def hold_reads(self, on_begin: Callable[[], None]) -> None:
        """Nothing to gain: a PostgreSQL statement costs a round trip either way."""

    def end_reads(self) -> None:
        pass

    def credentials_version(self) -> int:
        row = self._read("SELECT version FROM credentials_version").fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _bump_credentials(conn: Conn) -> None:
        conn.execute("UPDATE credentials_version SET version = version + 1")

    # -- accounts and credentials --------------------------------------------

    def create_account(self, account_id: str, name: str, created_at: str) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO accounts VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (account_id, name, created_at),
            )
            if cur.rowcount != 1:
                raise Conflict(f"account {account_id} already exists")

    def get_accounts(self, account_ids: list[str]) -> list[tuple[str, str, str]]:
        # ISSUE 9 HOOK (List Accounts): ``(id, name, created_at)`` of those that exist, by id.
        found = []
        for account_id in sorted(set(account_ids)):
            row = self._read(
                "SELECT id, name, created_at FROM accounts WHERE id=%s", (account_id,)
            ).fetchone()
            if row is not None:
                found.append((str(row[0]), str(row[1]), str(row[2])))
        return found

    def account_exists(self, account_id: str) -> bool:
        row = self._read("SELECT 1 FROM accounts WHERE id=%s", (account_id,)).fetchone()
        return row is not None

    def create_token(self, token: Token, secret_hash: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO tokens VALUES (%s, %s, %s, %s, %s, %s, %s, NULL)",
                (
                    token.id,
                    token.account_id,
                    token.name,
                    token.permission,
                    secret_hash,
                    token.created_at,
                    token.expires_on,
                ),
            )
            self._bump_credentials(conn)

    def list_tokens(self) -> list[Token]:
        rows = self._read(
            "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at "
            "FROM tokens ORDER BY created_at, id"
        ).fetchall()
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at=%s WHERE id=%s AND revoked_at IS NULL",
                (revoked_at, token_id),
            )
            self._bump_credentials(conn)
            return cur.rowcount == 1

    def find_token(self, secret_hash: bytes) -> tuple[Token, bytes] | None:
        row = self._read(
            "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at, "
            "secret_hash FROM tokens WHERE secret_hash=%s",
            (secret_hash,),
            binary=True,
        ).fetchone()
        return None if row is None else (Token(*row[:7]), row[7])

    def create_user(self, user: User, created_at: str) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO users VALUES (%s, %s, %s, %s) ON CONFLICT (email) DO NOTHING",
                (user.id, user.email, user.key_hash, created_at),
            )
            if cur.rowcount != 1:
                raise Conflict(f"a user with email {user.email} already exists")
            conn.execute(
                "INSERT INTO user_accounts SELECT %s, unnest(%s::text[])",
                (user.id, list(user.account_ids)),
            )
            self._bump_credentials(conn)

    def find_license(self, key_hash: bytes) -> tuple[str, str] | None:
        row = self._read(
            "SELECT account_id, id FROM connectors WHERE license_key_hash=%s", (key_hash,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def find_user(self, email: str) -> User | None:
        row = self._read(
            "SELECT id, email, key_hash, ARRAY(SELECT account_id FROM user_accounts "
            "WHERE user_id = users.id ORDER BY account_id) FROM users WHERE email=%s",
            (email,),
            binary=True,
        ).fetchone()
        return None if row is None else User(row[0], row[1], row[2], tuple(row[3]))

    # -- connectors -----------------------------------------------------------

    def list_connectors(self, account_id: str, device_type: str | None) -> list[Connector]:
        query = f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=%s"
        args: tuple[str, ...] = (account_id,)
        if device_type is not None:
            query += " AND device_type=%s"
            args += (device_type,)
        rows = self._read(query + " ORDER BY pk", args, binary=True).fetchall()
        return [connector_from_row(row) for row in rows]

    def create_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            # Creations in one account take turns (across nodes too), so that two
            # connectors can never claim the same device.
            conn.execute("SELECT 1 FROM accounts WHERE id=%s FOR UPDATE", (connector.account_id,))
            if conn.execute(
                "SELECT 1 FROM connectors WHERE account_id=%s "
                "AND (device_id=%s OR device_serial=%s)",
                (connector.account_id, connector.device_id, connector.device_serial),
            ).fetchone():
                return False
            conn.execute(
                f"INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES ({_CONNECTOR_VALUES})",
                connector_values(connector),
            )
            self._bump_credentials(conn)
            return True

    def get_connector(self, account_id: str, connector_id: str) -> Connector | None:
        if "\x00" in connector_id:
            return None
        row = self._read(
            f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=%s AND id=%s",
            (account_id, connector_id),
            binary=True,
        ).fetchone()
        return None if row is None else connector_from_row(row)

    def change_connector(
        self, account_id: str, connector_id: str, change: Callable[[Connector], None]
    ) -> Connector | None:
        if "\x00" in connector_id:
            return None
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=%s AND id=%s "
                "FOR UPDATE",
                (account_id, connector_id),
                binary=True,
            ).fetchone()
            if row is None:
                return None
            connector, params = changed_connector(row, change)
            conn.execute(connector_update_sql("%s"), params)
            self._bump_credentials(conn)
            return connector

    def delete_connector(self, account_id: str, connector_id: str) -> Connector | None:
        if "\x00" in connector_id:
            return None
        with self._write() as conn:
            row = conn.execute(
                f"DELETE FROM connectors WHERE account_id=%s AND id=%s "
                f"RETURNING pk, {CONNECTOR_COLUMNS}",
                (account_id, connector_id),
                binary=True,
            ).fetchone()
            if row is None:
                return None
            # Telemetry has no foreign key (see the schema): it goes here, in the
            # same transaction. An ingest holding the row lock finishes first.
            conn.execute("DELETE FROM events WHERE cpk=%s", (row[0],))
            conn.execute("DELETE FROM snapshots WHERE cpk=%s", (row[0],))
            self._bump_credentials(conn)
            return connector_from_row(row[1:])

    def fleet_summary(self, account_id: str, changed_since: str | None) -> list[FleetRow]:
        # ISSUE 9 HOOK: the fleet summary's read (see store.fleet).
        rows = self._read(
            fleet.fleet_sql("%s", changed_since is not None),
            fleet.fleet_args(account_id, changed_since),
            binary=True,
        ).fetchall()
        return [fleet.fleet_row(row) for row in rows]

    # -- telemetry events -----------------------------------------------------

    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult:
        failing = fleet.has_failure(events)  # issue 9

        def work(conn: Conn) -> IngestResult:
            cpk, last_seen_t = ingest.lock_connector(conn, account_id, connector_id)
            rows = ingest.number_and_dedupe(conn, cpk, events)
            duplicates = len(events) - len(rows)
            duplicates += ingest.insert_events(conn, cpk, rows, collected_at, events)
            ingest.heartbeat(conn, cpk, last_seen_t, events, collected_at)
            if failing:  # issue 9
                fleet.keep_failure(conn, "%s", cpk, rows, 0, 1, 2)
            return IngestResult(accepted=len(events) - duplicates, duplicates=duplicates)

        return self._telemetry_write("events", (ev.t for ev in events), work)

    def list_events(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        kind: str | None,
        after: tuple[float, float] | None,
        limit: int,
    ) -> list[EventMeta]:
        cpk = self._pks.get(account_id, connector_id)
        # With a cursor, start at the cursor's t (never before from: the cursor is bound to
        # the query): the scan seeks there and partitions before it are pruned.
        query = "SELECT a, k, n, t FROM events WHERE cpk=%s AND t>=%s AND t<=%s"
        args: list[object] = [cpk, t_from if after is None else after[0], t_to]
        if kind is not None:
            query += " AND k=%s"
            args.append(kind)
        if after is not None:
            query += " AND (t, n) > (%s, %s)"
            args += after
        query += " ORDER BY t, n LIMIT %s"
        args.append(limit)
        found = [EventMeta(*row) for row in self._read(query, args, binary=True)]
        if not found:
            self._pks.recheck(account_id, connector_id)
        return found

    def latest_events(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        cpk = self._pks.get(account_id, connector_id)
        rows = self._read(
            "SELECT doc FROM events WHERE cpk=%s ORDER BY t DESC, n DESC LIMIT %s",
            (cpk, limit),
            binary=True,
        ).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [doc for (doc,) in rows]

    def get_event(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None:
        cpk = self._pks.get(account_id, connector_id)
        execute = self._read
        for t, n in keys:
            row = execute(
                "SELECT doc FROM events WHERE cpk=%s AND t=%s AND n=%s", (cpk, t, n), binary=True
            ).fetchone()
            if row is not None:
                return row[0]  # type: ignore[no-any-return]
        self._pks.recheck(account_id, connector_id)
        return None

    # -- telemetry snapshots --------------------------------------------------

    def record_snapshots(
        self,
        account_id: str,
        connector_id: str,
        snapshots: list[NewSnapshot],
        collected_at: float,
    ) -> IngestResult:
        def work(conn: Conn) -> IngestResult:
            cpk, last_seen_t = ingest.lock_connector(conn, account_id, connector_id)
            unique = dedupe_snapshots(snapshots)
            duplicates = len(snapshots) - len(unique)
            duplicates += ingest.insert_snapshots(conn, cpk, unique, collected_at)
            ingest.heartbeat(conn, cpk, last_seen_t, snapshots, collected_at)
            fleet.keep_health(conn, "%s", cpk, snapshots)  # issue 9
            return IngestResult(accepted=len(snapshots) - duplicates, duplicates=duplicates)

        return self._telemetry_write("snapshots", (snap.t for snap in snapshots), work)

    def list_snapshots(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        after: float | None,
        limit: int,
    ) -> list[tuple[float, float]]:
        cpk = self._pks.get(account_id, connector_id)
        query = "SELECT a, t FROM snapshots WHERE cpk=%s AND t>=%s AND t<=%s"
        args: list[object] = [cpk, t_from, t_to]
        if after is not None:
            query += " AND t > %s"
            args.append(after)
        rows = self._read(query + " ORDER BY t LIMIT %s", [*args, limit], binary=True).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [(a, t) for a, t in rows]

    def latest_snapshots(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        cpk = self._pks.get(account_id, connector_id)
        rows = self._read(
            "SELECT doc FROM snapshots WHERE cpk=%s ORDER BY t DESC LIMIT %s",
            (cpk, limit),
            binary=True,
        ).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [doc for (doc,) in rows]

    def get_snapshot(self, account_id: str, connector_id: str, t: float) -> bytes | None:
        cpk = self._pks.get(account_id, connector_id)
        row = self._read(
            "SELECT doc FROM snapshots WHERE cpk=%s AND t=%s", (cpk, t), binary=True
        ).fetchone()
        if row is None:
            self._pks.recheck(account_id, connector_id)
            return None
        return row[0]  # type: ignore[no-any-return]

    # -- interrupts -----------------------------------------------------------

    def create_interrupt(
        self, account_id: str, connector_id: str, action: str, purge: bool, submitted_at: str
    ) -> Interrupt:
        with self._write() as conn:
            cpk, _ = ingest.lock_connector(conn, account_id, connector_id)
            try:
                row = conn.execute(
                    "INSERT INTO interrupts (cpk, action, purge, submitted_at) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (cpk, action, purge, submitted_at),
                ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise Conflict(
                    f"connector {connector_id} already has a pending interrupt; it must be "
                    "picked up before another is submitted"
                ) from None
            return Interrupt(int(row[0]) if row else 0, action, purge, submitted_at)

    def list_interrupts(self, account_id: str, connector_id: str) -> list[Interrupt]:
        cpk = self._read_pk(account_id, connector_id)
        rows = self._read(
            "SELECT id, action, purge, submitted_at, triggered_at FROM interrupts "
            "WHERE cpk=%s ORDER BY id",
            (cpk,),
            binary=True,
        ).fetchall()
        return [Interrupt(int(r[0]), r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def pick_up_interrupts(
        self, account_id: str, connector_id: str, triggered_at: str
    ) -> list[Interrupt]:
        with self._write() as conn:
            cpk, _ = ingest.lock_connector(conn, account_id, connector_id)
            rows = conn.execute(
                "UPDATE interrupts SET triggered_at=%s WHERE cpk=%s AND triggered_at IS NULL "
                "RETURNING id, action, purge, submitted_at",
                (triggered_at, cpk),
                binary=True,
            ).fetchall()
            conn.execute("UPDATE connectors SET last_heartbeat=%s WHERE pk=%s", (triggered_at, cpk))
        picked = sorted(rows, key=lambda r: int(r[0]))
        return [Interrupt(int(r[0]), r[1], bool(r[2]), r[3], triggered_at) for r in picked]

    # -- retention, export and import ----------------------------------------

    def purge_telemetry(self, before_t: float, batch: int) -> int:
        """Whole months before ``before_t`` are detached and dropped (cheap, however
        large; counted); the rest goes in bounded deletes, one short transaction each."""
        with self._connection() as conn:
            gone = self._partitions.drop_below(conn, before_t)
            for table, key in (("events", "cpk, t, n"), ("snapshots", "cpk, t")):
                if gone >= batch:
                    break
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE t < %s AND ({key}) IN "
                    f"(SELECT {key} FROM {table} WHERE t < %s LIMIT %s)",
                    (before_t, before_t, batch - gone),
                )
                gone += cur.rowcount
        return gone

    def export_events(
        self, account_id: str, connector_id: str, after: tuple[float, float] | None, limit: int
    ) -> list[tuple[float, float, float, str, bytes]]:
        cpk = self._read_pk(account_id, connector_id)
        query = "SELECT t, n, a, k, doc FROM events WHERE cpk=%s"
        args: list[object] = [cpk]
        if after is not None:
            query += " AND (t, n) > (%s, %s)"
            args += after
        rows = self._read(query + " ORDER BY t, n LIMIT %s", [*args, limit], binary=True)
        return [tuple(row) for row in rows]

    def export_snapshots(
        self, account_id: str, connector_id: str, after: float | None, limit: int
    ) -> list[tuple[float, float, bytes]]:
        cpk = self._read_pk(account_id, connector_id)
        query = "SELECT t, a, doc FROM snapshots WHERE cpk=%s"
        args: list[object] = [cpk]
        if after is not None:
            query += " AND t > %s"
            args.append(after)
        rows = self._read(query + " ORDER BY t LIMIT %s", [*args, limit], binary=True)
        return [tuple(row) for row in rows]

    def import_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                f"INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES ({_CONNECTOR_VALUES}) "
                "ON CONFLICT (account_id, id) DO NOTHING",
                connector_values(connector),
            )
            if cur.rowcount != 1:
                return False
            self._bump_credentials(conn)
            return True

    def import_events(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, float, str, bytes]]
    ) -> int:
        def work(conn: Conn) -> int:
            cpk, _ = ingest.lock_connector(conn, account_id, connector_id)
            if not rows:
                return 0
            columns = [list(column) for column in zip(*rows, strict=True)]
            cur = conn.execute(
                "INSERT INTO events (cpk, t, n, a, k, doc) SELECT %b, * FROM unnest("
                "%b::float8[], %b::float8[], %b::float8[], %b::text[], %b::bytea[]) "
                "ON CONFLICT DO NOTHING",
                (cpk, *columns),
            )
            fleet.keep_failure(conn, "%s", cpk, rows, 0, 1, 3)  # issue 9
            return cur.rowcount

        return self._telemetry_write("events", (row[0] for row in rows), work)

    def import_snapshots(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, bytes]]
    ) -> int:
        def work(conn: Conn) -> int:
            cpk, _ = ingest.lock_connector(conn, account_id, connector_id)
            if not rows:
                return 0
            columns = [list(column) for column in zip(*rows, strict=True)]
            cur = conn.execute(
                "INSERT INTO snapshots (cpk, t, a, doc) SELECT %b, * FROM unnest("
                "%b::float8[], %b::float8[], %b::bytea[]) ON CONFLICT DO NOTHING",
                (cpk, *columns),
            )
            return cur.rowcount

        return self._telemetry_write("snapshots", (row[0] for row in rows), work)
