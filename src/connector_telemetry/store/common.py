"""``SQLStore``: the ``Store`` methods both stores share, written once on the shared SQL
(``store.sql``). A store provides its connections (``_read`` for reads on the calling
thread, ``_write`` for one write transaction, ``_migration`` for the schema's) and what
is genuinely its own: ingest and import (batch inserts), held reads, partitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from connector_telemetry.clock import rfc3339
from connector_telemetry.errors import ApiError, Conflict, NotFound, Unavailable
from connector_telemetry.models import (
    Connector,
    EventMeta,
    IngestResult,
    Interrupt,
    NewEvent,
    Token,
    User,
)
from connector_telemetry.store.base import SchemaTooNew, Staged, at_once, ignore_step
from connector_telemetry.store.feed import Feed
from connector_telemetry.store.fleet import FleetSummary
from connector_telemetry.store.rows import (
    ConnectorPks,
    changed_connector,
    connector_from_row,
    connector_values,
    pending_interrupt_conflict,
)
from connector_telemetry.store.sql import SQL, Connection, Cursor, Dialect, migrations


def locked(row: Any, connector_id: str) -> int:
    """The pk of ``lock_connector``'s row (None: 404)."""
    if row is None:
        raise NotFound(f"connector {connector_id} not found")
    return int(row[0])


class SQLStore(FleetSummary, Feed):
    dialect: ClassVar[Dialect]
    sql: ClassVar[SQL]
    #: The newest schema version this code knows (the dialect's last migration).
    known_schema_version: int
    #: How the store is named in messages (a path, or a URL with its password masked).
    name: str
    _pks: ConnectorPks
    observe: Callable[[str, float], None] = staticmethod(ignore_step)
    read_threads = 0
    reads_on_loop = False

    def bind_reader(self) -> None:
        """Nothing: reads run inline (see ``Store.read_threads``)."""

    def record_events_staged(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> Staged[IngestResult]:
        """``record_events``, with nothing to prepare or overlap (SQLite's one writer)."""
        return at_once(self.record_events)(account_id, connector_id, events, collected_at)

    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult:
        raise NotImplementedError  # (each store's own)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "dialect" in cls.__dict__:
            cls.sql = SQL().adapted(cls.dialect)
            cls.known_schema_version = migrations(cls.dialect.name)[-1][0]

    # -- what each store provides -------------------------------------------------

    def _read(self, query: str, args: Any = ()) -> Cursor:
        """One statement on the calling thread's read connection."""
        raise NotImplementedError

    @property
    def _execute(self) -> Callable[..., Cursor]:
        """``_read`` for the hot reads: ``_read`` itself, or (SQLite) the read connection's
        own ``execute``, one Python call less per statement."""
        return self._read

    def _write(self) -> AbstractContextManager[Connection]:
        """A connection inside one write transaction (committed on exit)."""
        raise NotImplementedError

    def _import(
        self, account_id: str, connector_id: str, table: str, rows: Sequence[tuple[Any, ...]]
    ) -> int:
        """Store exported rows of ``table`` (their columns after ``cpk``), skipping keys
        already stored; how many were new."""
        raise NotImplementedError

    def _migration(self) -> AbstractContextManager[Connection]:
        """A connection inside the transaction that migrates the schema (one process
        at a time)."""
        raise NotImplementedError

    # -- schema ---------------------------------------------------------------------

    def schema_version(self) -> int:
        return self._schema_version(self._read)

    def _schema_version(self, execute: Callable[..., Any]) -> int:
        if execute(self.dialect.schema_table_exists).fetchone() is None:
            return 0
        got = execute(self.sql.schema_version).fetchone()
        return int(got[0] or 0) if got else 0

    def migrate(self) -> int:
        """Apply every migration newer than the database's schema; return the version."""
        known = self.known_schema_version
        with self._migration() as conn:
            conn.execute(self.sql.create_schema_version)
            current = self._schema_version(conn.execute)
            if current > known:
                raise SchemaTooNew(
                    f"{self.name} has schema version {current}, newer than this ctel "
                    f"knows ({known}); upgrade connector-telemetry"
                )
            for version, script in migrations(self.dialect.name):
                if version > current:
                    self.dialect.run_script(conn, script)
                    conn.execute(self.sql.add_schema_version, (version,))
        return max(current, known)

    def pool_state(self) -> tuple[int, int, int] | None:
        return None

    def ping(self) -> None:
        self._read(self.sql.ping).fetchone()

    def refusal(self, exc: Exception) -> ApiError:
        return Unavailable("the store is busy; retry shortly")

    def is_empty(self) -> bool:
        return self._read(self.sql.any_account).fetchone() is None

    def credentials_version(self) -> int:
        row = self._read(self.sql.credentials_version).fetchone()
        return int(row[0]) if row else 0

    async def credentials_version_async(self) -> int:
        rows = await self._fetch(self.sql.credentials_version, ())
        return int(rows[0][0]) if rows else 0

    def _bump_credentials(self, conn: Connection) -> None:
        conn.execute(self.sql.bump_credentials)

    # -- accounts and credentials -----------------------------------------------------

    def create_account(self, account_id: str, name: str, created_at: str) -> None:
        with self._write() as conn:
            if conn.execute(self.sql.insert_account, (account_id, name, created_at)).rowcount != 1:
                raise Conflict(f"account {account_id} already exists")

    def account_exists(self, account_id: str) -> bool:
        return self._read(self.sql.account_exists, (account_id,)).fetchone() is not None

    def create_token(self, token: Token, secret_hash: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                self.sql.insert_token,
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
        return [Token(*row) for row in self._read(self.sql.list_tokens).fetchall()]

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        with self._write() as conn:
            revoked: int = conn.execute(self.sql.revoke_token, (revoked_at, token_id)).rowcount
            self._bump_credentials(conn)
            return revoked == 1

    def find_token(self, secret_hash: bytes) -> tuple[Token, bytes] | None:
        row = self._read(self.sql.find_token, (secret_hash,)).fetchone()
        return None if row is None else (Token(*row[:7]), bytes(row[7]))

    def create_user(self, user: User, created_at: str) -> None:
        with self._write() as conn:
            row = (user.id, user.email, user.key_hash, created_at)
            if conn.execute(self.sql.insert_user, row).rowcount != 1:
                raise Conflict(f"a user with email {user.email} already exists")
            for account_id in user.account_ids:
                conn.execute(self.sql.insert_user_account, (user.id, account_id))
            self._bump_credentials(conn)

    def find_user(self, email: str) -> User | None:
        row = self._read(self.sql.find_user, (email,)).fetchone()
        if row is None:
            return None
        accounts = self._read(self.sql.user_accounts, (row[0],)).fetchall()
        return User(row[0], row[1], bytes(row[2]), tuple(a for (a,) in accounts))

    def find_license(self, key_hash: bytes) -> tuple[str, str] | None:
        row = self._read(self.sql.find_license, (key_hash,)).fetchone()
        return None if row is None else (row[0], row[1])

    # -- connectors -------------------------------------------------------------------

    def list_connectors(self, account_id: str, device_type: str | None) -> list[Connector]:
        if device_type is None:
            found = self._read(self.sql.list_connectors, (account_id,))
        else:
            found = self._read(self.sql.list_connectors_of_type, (account_id, device_type))
        return [connector_from_row(row) for row in found.fetchall()]

    def create_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            conn.execute(self.sql.lock_account, (connector.account_id,))
            device = (connector.account_id, connector.device_id, connector.device_serial)
            if conn.execute(self.sql.device_taken, device).fetchone():
                return False
            conn.execute(self.sql.insert_connector, connector_values(connector))
            self._bump_credentials(conn)
            return True

    def get_connector(self, account_id: str, connector_id: str) -> Connector | None:
        if "\x00" in connector_id:  # PostgreSQL text cannot hold one: no such connector
            return None
        row = self._read(self.sql.get_connector, (account_id, connector_id)).fetchone()
        return None if row is None else connector_from_row(row)

    def change_connector(
        self, account_id: str, connector_id: str, change: Callable[[Connector], None]
    ) -> Connector | None:
        if "\x00" in connector_id:
            return None
        with self._write() as conn:
            row = conn.execute(self.sql.lock_connector_row, (account_id, connector_id)).fetchone()
            if row is None:
                return None
            connector, params = changed_connector(row[1:], change)
            conn.execute(self.sql.update_connector, params)
            self._bump_credentials(conn)
            return connector

    def delete_connector(self, account_id: str, connector_id: str) -> Connector | None:
        """The connector and, in the same transaction, its telemetry and interrupts (an
        ingest holding the row lock finishes first)."""
        if "\x00" in connector_id:
            return None
        with self._write() as conn:
            row = conn.execute(self.sql.lock_connector_row, (account_id, connector_id)).fetchone()
            if row is None:
                return None
            conn.execute(self.sql.delete_events, (row[0],))
            conn.execute(self.sql.delete_snapshots, (row[0],))
            conn.execute(self.sql.delete_connector, (row[0],))  # interrupts: ON DELETE CASCADE
            self._bump_credentials(conn)
            return connector_from_row(row[1:])

    def import_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            if conn.execute(self.sql.insert_connector, connector_values(connector)).rowcount != 1:
                return False
            self._bump_credentials(conn)
            return True

    def _connector_pk(self, account_id: str, connector_id: str) -> int:
        """The connector's pk, read now (``self._pks`` caches it for the hot reads)."""
        if "\x00" not in connector_id:
            row = self._read(self.sql.connector_pk, (account_id, connector_id)).fetchone()
            if row is not None:
                return int(row[0])
        raise NotFound(f"connector {connector_id} not found")

    def _lock_connector(self, conn: Connection, account_id: str, connector_id: str) -> int:
        """The connector's pk, its row locked until commit."""
        row = None
        if "\x00" not in connector_id:
            row = conn.execute(self.sql.lock_connector, (account_id, connector_id)).fetchone()
        return locked(row, connector_id)

    def _heartbeat(
        self,
        conn: Connection,
        cpk: int,
        newest: tuple[float, str] | None,
        collected_at: float,
        query: str | None = None,
    ) -> None:
        """Ingest is a sign of life; the newest item's version (``newest``: its ``t`` and
        ``v``, see ``rows.newest_version``) is the one last seen, unless telemetry
        recorded later was already seen (``SQL.heartbeat_seen``, or ``query``: a statement
        around it with the same parameters)."""
        t, v = newest if newest is not None else (None, None)
        conn.execute(query or self.sql.heartbeat_seen, (rfc3339(collected_at), t, v, t, t, cpk))

    # -- telemetry reads ----------------------------------------------------------------

    def _telemetry(
        self, account_id: str, connector_id: str, query: str, args: tuple[Any, ...]
    ) -> list[Any]:
        """The rows of a read of one connector's telemetry, its pk from the cache. An empty
        answer is checked against the connector itself: a pk cached for a connector since
        deleted must answer 404, not an empty list (pks are never reused)."""
        cpk = self._pks.get(account_id, connector_id)
        rows = self._execute(query, (cpk, *args)).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return rows

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
        query, args = self._list_events_query(t_from, t_to, kind, after, limit)
        return list(map(EventMeta._make, self._telemetry(account_id, connector_id, query, args)))

    def _list_events_query(
        self,
        t_from: float,
        t_to: float,
        kind: str | None,
        after: tuple[float, float] | None,
        limit: int,
    ) -> tuple[str, tuple[Any, ...]]:
        sql = self.sql
        if after is None:
            if kind is None:
                return sql.list_events, (t_from, t_to, limit)
            return sql.list_events_of_kind, (t_from, t_to, kind, limit)
        if kind is None:
            return sql.list_events_after, (*after, after[0], t_to, limit)
        return sql.list_events_of_kind_after, (*after, after[0], t_to, kind, limit)

    def latest_events(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        rows = self._telemetry(account_id, connector_id, self.sql.latest_events, (limit,))
        return [doc for (doc,) in rows]

    def get_event(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None:
        """The hot path: one indexed lookup per way of reading the event id."""
        cpk = self._pks.get(account_id, connector_id)
        execute, query = self._execute, self.sql.get_event
        for t, n in keys:
            row = execute(query, (cpk, t, n)).fetchone()
            if row is not None:
                return row[0]  # type: ignore[no-any-return]
        self._pks.recheck(account_id, connector_id)
        return None

    # The hot reads' twins for the event loop (``Store.reads_on_loop``): the same answers,
    # each statement awaited through ``_fetch``.

    async def _fetch(self, query: str, args: tuple[Any, ...]) -> list[Any]:
        """The rows of one hot read, awaited (PostgreSQL: pipelined); here: inline."""
        return self._execute(query, args).fetchall()

    async def _telemetry_async(
        self, account_id: str, connector_id: str, query: str, args: tuple[Any, ...]
    ) -> list[Any]:
        """``_telemetry``, awaited."""
        cpk = self._pks.get(account_id, connector_id)
        rows = await self._fetch(query, (cpk, *args))
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return rows

    async def list_events_async(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        kind: str | None,
        after: tuple[float, float] | None,
        limit: int,
    ) -> list[EventMeta]:
        query, args = self._list_events_query(t_from, t_to, kind, after, limit)
        rows = await self._telemetry_async(account_id, connector_id, query, args)
        return list(map(EventMeta._make, rows))

    async def latest_events_async(
        self, account_id: str, connector_id: str, limit: int
    ) -> list[bytes]:
        query = self.sql.latest_events
        return [
            doc for (doc,) in await self._telemetry_async(account_id, connector_id, query, (limit,))
        ]

    async def get_event_async(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None:
        cpk = self._pks.get(account_id, connector_id)
        doc = await self._fetch_event(cpk, keys)
        if doc is None:
            self._pks.recheck(account_id, connector_id)
        return doc

    async def _fetch_event(self, cpk: int, keys: list[tuple[float, float]]) -> bytes | None:
        """The document of the first of ``keys`` stored (PostgreSQL: gathered with other
        requests' into one statement, ``pg_pipeline.Lookups``)."""
        for t, n in keys:
            rows = await self._fetch(self.sql.get_event, (cpk, t, n))
            if rows:
                return rows[0][0]  # type: ignore[no-any-return]
        return None

    def list_snapshots(
        self,
        account_id: str,
        connector_id: str,
        t_from: float,
        t_to: float,
        after: float | None,
        limit: int,
    ) -> list[tuple[float, float]]:
        if after is None:
            query, start = self.sql.list_snapshots, t_from
        else:
            query, start = self.sql.list_snapshots_after, after
        rows = self._telemetry(account_id, connector_id, query, (start, t_to, limit))
        return [(a, t) for a, t in rows]

    def latest_snapshots(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        rows = self._telemetry(account_id, connector_id, self.sql.latest_snapshots, (limit,))
        return [doc for (doc,) in rows]

    def get_snapshot(self, account_id: str, connector_id: str, t: float) -> bytes | None:
        rows = self._telemetry(account_id, connector_id, self.sql.get_snapshot, (t,))
        return rows[0][0] if rows else None

    # -- interrupts -------------------------------------------------------------------

    def create_interrupt(
        self, account_id: str, connector_id: str, action: str, purge: bool, submitted_at: str
    ) -> Interrupt:
        with self._write() as conn:
            cpk = self._lock_connector(conn, account_id, connector_id)
            try:
                conn.execute(self.sql.insert_interrupt, (cpk, action, purge, submitted_at))
            except self.dialect.unique_violation:
                raise pending_interrupt_conflict(connector_id) from None
            (row,) = conn.execute(self.sql.pending_interrupts, (cpk,)).fetchall()
            return Interrupt(int(row[0]), action, purge, submitted_at)

    def list_interrupts(self, account_id: str, connector_id: str) -> list[Interrupt]:
        cpk = self._connector_pk(account_id, connector_id)
        rows = self._read(self.sql.list_interrupts, (cpk,)).fetchall()
        return [Interrupt(int(r[0]), r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def pick_up_interrupts(
        self, account_id: str, connector_id: str, triggered_at: str
    ) -> list[Interrupt]:
        with self._write() as conn:
            cpk = self._lock_connector(conn, account_id, connector_id)
            rows = conn.execute(self.sql.pending_interrupts, (cpk,)).fetchall()
            conn.execute(self.sql.trigger_interrupts, (triggered_at, cpk))
            conn.execute(self.sql.heartbeat, (triggered_at, cpk))
        return [Interrupt(int(r[0]), r[1], bool(r[2]), r[3], triggered_at) for r in rows]

    # -- retention and export -----------------------------------------------------------

    def _drop_telemetry_before(self, before_t: float) -> int:
        """Drop whole stretches of telemetry before ``before_t`` where the store keeps
        them apart (PostgreSQL's month partitions); returns how many rows went."""
        return 0

    def purge_telemetry(self, before_t: float, batch: int) -> int:
        """Whole stretches first where the store has them, then bounded deletes, one
        short write transaction each, so ingest is never blocked for long."""
        gone = self._drop_telemetry_before(before_t)
        for query in (self.sql.purge_events, self.sql.purge_snapshots):
            if gone >= batch:
                break
            with self._write() as conn:
                gone += conn.execute(query, (before_t, before_t, batch - gone)).rowcount
        if gone < batch:  # the streams' feed, by arrival time (store/feed.py; not counted)
            trimmed = batch
            while trimmed == batch:  # bounded transactions, so ingest waits little
                with self._write() as conn:
                    trimmed = self._purge_feed(conn, before_t, batch)
        return gone

    def export_events(
        self, account_id: str, connector_id: str, after: tuple[float, float] | None, limit: int
    ) -> list[tuple[float, float, float, str, bytes]]:
        cpk = self._connector_pk(account_id, connector_id)
        if after is None:
            found = self._read(self.sql.export_events, (cpk, limit))
        else:
            found = self._read(self.sql.export_events_after, (cpk, *after, limit))
        return [tuple(row) for row in found.fetchall()]

    def export_snapshots(
        self, account_id: str, connector_id: str, after: float | None, limit: int
    ) -> list[tuple[float, float, bytes]]:
        cpk = self._connector_pk(account_id, connector_id)
        if after is None:
            found = self._read(self.sql.export_snapshots, (cpk, limit))
        else:
            found = self._read(self.sql.export_snapshots_after, (cpk, after, limit))
        return [tuple(row) for row in found.fetchall()]

    def import_events(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, float, str, bytes]]
    ) -> int:
        return self._import(account_id, connector_id, "events", rows)

    def import_snapshots(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, bytes]]
    ) -> int:
        return self._import(account_id, connector_id, "snapshots", rows)

    # -- test mode (issue 11) ---------------------------------------------------------------

    def _read_fresh(self, query: str, args: Any = ()) -> Cursor:
        """A read that sees every commit made before it (not a held read transaction's
        snapshot): ``_read`` where reads are not held."""
        return self._read(query, args)

    def test_marker(self) -> str | None:
        row = self._read_fresh(self.sql.test_marker).fetchone()
        return None if row is None else str(row[0])

    def mark_test_mode(self, created_at: str) -> None:
        with self._write() as conn:
            conn.execute(self.sql.set_test_marker, (created_at,))

    def test_state(self) -> tuple[float, int | None, float | None, int]:
        row = self._read_fresh(self.sql.test_state).fetchone()
        return float(row[0]), row[1], row[2], int(row[3])

    def test_clock(self) -> float:
        if self.test_marker() is None:
            return 0.0
        return self.test_state()[0]

    def set_clock_offset(self, offset: float) -> None:
        with self._write() as conn:
            conn.execute(self.sql.set_clock_offset, (offset,))

    def set_rate_limit(self, requests: int | None, period: float | None) -> None:
        with self._write() as conn:
            conn.execute(self.sql.set_rate_limit, (requests, period))
            conn.execute(self.sql.clear_rate_hits)

    def rate_hit(self, credential: str, window: int) -> int:
        with self._write() as conn:
            return int(conn.execute(self.sql.rate_hit, (credential, window)).fetchone()[0])

    def add_fault(
        self,
        route: str,
        method: str | None,
        status: int | None,
        delay_ms: int | None,
        close: bool,
        count: int | None,
    ) -> int:
        with self._write() as conn:
            row = (route, method, status, delay_ms, close, count, count)
            return int(conn.execute(self.sql.add_fault, row).fetchone()[0])

    def list_faults(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._read_fresh(self.sql.list_faults).fetchall()]

    def delete_fault(self, fault_id: int) -> bool:
        with self._write() as conn:
            return bool(conn.execute(self.sql.delete_fault, (fault_id,)).rowcount == 1)

    def clear_faults(self) -> int:
        with self._write() as conn:
            return int(conn.execute(self.sql.clear_faults).rowcount)

    def take_fault(self, route: str, method: str) -> tuple[Any, ...] | None:
        with self._write() as conn:
            row = conn.execute(self.sql.take_fault, (route, method)).fetchone()
        return None if row is None else tuple(row)

    def add_journal(self, row: tuple[Any, ...]) -> None:
        with self._write() as conn:
            conn.execute(self.sql.add_journal, row)

    def list_journal(self, filters: dict[str, Any]) -> list[tuple[Any, ...]]:
        where, args = [], []
        for column, value in filters.items():
            if value is None:
                continue
            where.append("time >= ?" if column == "since" else f"{column} = ?")
            args.append(value)
        query = self.sql.list_journal
        if where:
            query += " WHERE " + " AND ".join(where)
        query = self.dialect.adapt(query + " ORDER BY id")
        return [tuple(row) for row in self._read_fresh(query, tuple(args)).fetchall()]

    def clear_journal(self) -> int:
        with self._write() as conn:
            return int(conn.execute(self.sql.clear_journal).rowcount)

    def reset_test_data(self) -> dict[str, int]:
        sql = self.sql
        with self._write() as conn:
            conn.execute(sql.lock_all_connectors).fetchall()
            removed = {
                "events": conn.execute(sql.reset_events).rowcount,
                "snapshots": conn.execute(sql.reset_snapshots).rowcount,
                "interrupts": conn.execute(sql.reset_interrupts).rowcount,
                "connectors": conn.execute(sql.reset_connectors).rowcount,
            }
            for query in (sql.reset_feed, sql.clear_faults, sql.clear_journal, sql.clear_rate_hits):
                conn.execute(query)
            conn.execute(sql.reset_state)
            self._bump_credentials(conn)  # license keys went with their connectors
        return {name: int(count) for name, count in removed.items()}
