"""The embedded store: one SQLite file in WAL mode.

Exactly one writer connection per process (guarded by a lock; the HTTP layer
sends every write to one thread), and one reader connection for the event loop.
Many processes may open the same file. SQLite serializes their writers, but a writer
that finds the file locked sleeps 1, 2, 5, 10, ... ms between tries (its default busy
handler), so the workers of one server, handing the write lock to one another hundreds
of times a second, would spend much of each turn asleep. They take turns on an advisory
``flock`` of a lock file beside the database first (``WriterTurn``), polled at a fine
grain; SQLite's busy timeout still covers writers that do not take part (a ``sqlite3``
shell).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from typing import Any

from connector_telemetry.errors import Conflict, NotFound
from connector_telemetry.service.clock import rfc3339
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
    same_content,
)
from connector_telemetry.store import fleet
from connector_telemetry.store.rows import (
    CONNECTOR_COLUMNS,
    ConnectorPks,
    changed_connector,
    connector_from_row,
    connector_update_sql,
    connector_values,
    dedupe_snapshots,
    newest_version,
    number_events,
    ready_rows,
    unnumbered_times,
)


class SchemaTooNew(Exception):
    pass


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("connector_telemetry.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


SCHEMA_VERSION = _migrations()[-1][0]


class WriterTurn:
    """Cross-process writer turns: an exclusive ``flock`` on ``<database>-writer.lock``.

    Polled without blocking, sleeping 50 us at first and at most 500 us between tries, so a
    turn passes within a fraction of a millisecond of its release; after ``timeout_s``,
    ``sqlite3.OperationalError`` (answered 503, as SQLite's own busy timeout is). A process
    that dies holding it releases it with its file descriptors. The file gets the
    database's permissions (and, for root, its owner), as SQLite's ``-wal`` and ``-shm``
    files do; a process that cannot open it takes turns through SQLite's locking alone.
    """

    def __init__(self, db_path: str, timeout_s: float):
        self.timeout_s = timeout_s
        self.fd = -1
        try:
            db = os.stat(db_path)
        except OSError:
            return
        try:
            self.fd = os.open(
                db_path + "-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, db.st_mode & 0o666
            )
        except OSError:
            return
        if os.geteuid() == 0 and (db.st_uid, db.st_gid) != (0, 0):
            with suppress(OSError):
                os.fchown(self.fd, db.st_uid, db.st_gid)

    def acquire(self) -> None:
        if self.fd < 0:
            return
        deadline = 0.0
        pause = 50e-6
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if not deadline:
                deadline = now + self.timeout_s
            elif now > deadline:
                raise sqlite3.OperationalError("database is locked (writer turn timed out)")
            time.sleep(pause)
            pause = min(pause * 2, 500e-6)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HeldReader:
    """The event loop's reads, in one read transaction kept open across statements for as
    long as nothing is committed anywhere.

    In WAL mode every autocommit statement begins and ends a read transaction, which takes
    and drops a lock on the ``-shm`` file: ~3 us of a ~5 us Get Event lookup (measured).
    Reads stay exact: before each use, the WAL index header (the first 48 bytes of the
    ``-shm`` file, which every commit rewrites before it returns; format:
    sqlite.org/walformat.html) is compared with its copy taken just before the transaction
    began; any difference begins a new transaction. A commit acknowledged before a request
    is therefore always visible to it. The header is read before the transaction takes its
    snapshot (at its first statement), so the copy can only be older than the snapshot,
    never newer: a change can cause a needless refresh, never a stale read.
    ``on_begin`` lets the caller end the transaction soon (the HTTP layer: at the next turn
    of the event loop), so an idle worker never holds an old snapshot that would keep WAL
    checkpoints from completing.
    """

    def __init__(self, conn: sqlite3.Connection, shm: mmap.mmap, on_begin: Callable[[], None]):
        self.conn, self._shm, self._on_begin = conn, shm, on_begin
        self._header = b""

    def get(self) -> sqlite3.Connection:
        header = self._shm[:48]
        conn = self.conn
        if conn.in_transaction:
            if header == self._header:
                return conn
            conn.execute("COMMIT")
        self._header = header
        conn.execute("BEGIN")
        self._on_begin()
        return conn

    def end(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self._shm.close()
        self.conn.close()


class SQLiteStore:
    unavailable_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    known_schema_version = SCHEMA_VERSION

    def __init__(self, path: str, *, busy_timeout_ms: int = 10_000, synchronous: str = "FULL"):
        self.path = path
        self._busy_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._write_lock = threading.Lock()
        self._writer = self._connect()  # creates the file
        self._turn = WriterTurn(path, busy_timeout_ms / 1000)
        self._reader: sqlite3.Connection | None = None
        self._held: HeldReader | None = None
        self._held_thread = -1
        self._data_version = -1
        self._pks = ConnectorPks(lambda a, c: self._connector_pk(self.reader, a, c))
        self._credentials_version = 0

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
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

    def close(self) -> None:
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
            self._turn.acquire()
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

    # -- schema ---------------------------------------------------------------

    def schema_version(self) -> int:
        row = self._writer.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        if row is None:
            return 0
        got = self._writer.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(got[0] or 0)

    def migrate(self) -> int:
        """Apply every migration newer than the file's schema; return the version."""
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.path} has schema version {current}, newer than this ctel "
                    f"knows ({SCHEMA_VERSION}); upgrade connector-telemetry"
                )
            for version, sql in _migrations():
                if version > current:
                    for statement in sql.split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
            return max(current, SCHEMA_VERSION)

    def ping(self) -> None:
        self.reader.execute("SELECT 1").fetchone()

    def is_empty(self) -> bool:
        return self.reader.execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is None

    def credentials_version(self) -> int:
        """The credentials version, re-read only when the file changed at all
        (``PRAGMA data_version`` moves on every commit by another connection)."""
        (data_version,) = self.reader.execute("PRAGMA data_version").fetchone()
        if data_version != self._data_version:
            (self._credentials_version,) = self.reader.execute(
                "SELECT version FROM credentials_version"
            ).fetchone()
            self._data_version = data_version
        return int(self._credentials_version)

    # -- accounts and credentials --------------------------------------------

    def create_account(self, account_id: str, name: str, created_at: str) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE id=?", (account_id,)).fetchone():
                raise Conflict(f"account {account_id} already exists")
            conn.execute("INSERT INTO accounts VALUES (?, ?, ?)", (account_id, name, created_at))

    def get_accounts(self, account_ids: list[str]) -> list[tuple[str, str, str]]:
        # ISSUE 9 HOOK (List Accounts): ``(id, name, created_at)`` of those that exist, by id.
        found = []
        for account_id in sorted(set(account_ids)):
            row = self.reader.execute(
                "SELECT id, name, created_at FROM accounts WHERE id=?", (account_id,)
            ).fetchone()
            if row is not None:
                found.append((str(row[0]), str(row[1]), str(row[2])))
        return found

    def account_exists(self, account_id: str) -> bool:
        row = self.reader.execute("SELECT 1 FROM accounts WHERE id=?", (account_id,)).fetchone()
        return row is not None

    def create_token(self, token: Token, secret_hash: bytes) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
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
            conn.execute("UPDATE credentials_version SET version = version + 1")

    def list_tokens(self) -> list[Token]:
        rows = self.reader.execute(
            "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at "
            "FROM tokens ORDER BY created_at, id"
        ).fetchall()
        return [Token(*row) for row in rows]

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE tokens SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (revoked_at, token_id),
            )
            conn.execute("UPDATE credentials_version SET version = version + 1")
            return cur.rowcount == 1

    def find_token(self, secret_hash: bytes) -> tuple[Token, bytes] | None:
        row = self.reader.execute(
            "SELECT id, account_id, name, permission, created_at, expires_on, revoked_at, "
            "secret_hash FROM tokens WHERE secret_hash=?",
            (secret_hash,),
        ).fetchone()
        return None if row is None else (Token(*row[:7]), row[7])

    def create_user(self, user: User, created_at: str) -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM users WHERE email=?", (user.email,)).fetchone():
                raise Conflict(f"a user with email {user.email} already exists")
            conn.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?)",
                (user.id, user.email, user.key_hash, created_at),
            )
            conn.executemany(
                "INSERT INTO user_accounts VALUES (?, ?)",
                [(user.id, account) for account in user.account_ids],
            )
            conn.execute("UPDATE credentials_version SET version = version + 1")

    @staticmethod
    def _bump_credentials(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE credentials_version SET version = version + 1")

    def find_license(self, key_hash: bytes) -> tuple[str, str] | None:
        row = self.reader.execute(
            "SELECT account_id, id FROM connectors WHERE license_key_hash=?", (key_hash,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def find_user(self, email: str) -> User | None:
        row = self.reader.execute(
            "SELECT id, email, key_hash FROM users WHERE email=?", (email,)
        ).fetchone()
        if row is None:
            return None
        accounts = self.reader.execute(
            "SELECT account_id FROM user_accounts WHERE user_id=? ORDER BY account_id", (row[0],)
        ).fetchall()
        return User(row[0], row[1], row[2], tuple(a for (a,) in accounts))

    # -- connectors -----------------------------------------------------------

    def list_connectors(self, account_id: str, device_type: str | None) -> list[Connector]:
        sql = f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=?"
        args: tuple[str, ...] = (account_id,)
        if device_type is not None:
            sql += " AND device_type=?"
            args += (device_type,)
        rows = self.reader.execute(sql + " ORDER BY pk", args).fetchall()
        return [connector_from_row(row) for row in rows]

    def create_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM connectors WHERE account_id=? AND (device_id=? OR device_serial=?)",
                (connector.account_id, connector.device_id, connector.device_serial),
            ).fetchone():
                return False
            conn.execute(
                f"INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                connector_values(connector),
            )
            self._bump_credentials(conn)
            return True

    @staticmethod
    def _connector_row(
        conn: sqlite3.Connection, account_id: str, connector_id: str
    ) -> tuple[Any, ...] | None:
        return conn.execute(  # type: ignore[no-any-return]
            f"SELECT {CONNECTOR_COLUMNS} FROM connectors WHERE account_id=? AND id=?",
            (account_id, connector_id),
        ).fetchone()

    def get_connector(self, account_id: str, connector_id: str) -> Connector | None:
        row = self._connector_row(self.reader, account_id, connector_id)
        return None if row is None else connector_from_row(row)

    def change_connector(
        self, account_id: str, connector_id: str, change: Callable[[Connector], None]
    ) -> Connector | None:
        with self._write() as conn:
            row = self._connector_row(conn, account_id, connector_id)
            if row is None:
                return None
            connector, params = changed_connector(row, change)
            conn.execute(connector_update_sql("?"), params)
            self._bump_credentials(conn)
            return connector

    def delete_connector(self, account_id: str, connector_id: str) -> Connector | None:
        with self._write() as conn:
            row = self._connector_row(conn, account_id, connector_id)
            if row is None:
                return None
            conn.execute(
                "DELETE FROM connectors WHERE account_id=? AND id=?", (account_id, connector_id)
            )
            self._bump_credentials(conn)
            return connector_from_row(row)

    def fleet_summary(self, account_id: str, changed_since: str | None) -> list[FleetRow]:
        # ISSUE 9 HOOK: the fleet summary's read (see store.fleet).
        rows = self.reader.execute(
            fleet.fleet_sql("?", changed_since is not None),
            fleet.fleet_args(account_id, changed_since),
        ).fetchall()
        return [fleet.fleet_row(row) for row in rows]

    # -- telemetry events -----------------------------------------------------

    def _connector_pk(self, conn: sqlite3.Connection, account_id: str, connector_id: str) -> int:
        row = conn.execute(
            "SELECT pk FROM connectors WHERE account_id=? AND id=?", (account_id, connector_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"connector {connector_id} not found")
        return int(row[0])

    def record_events(
        self, account_id: str, connector_id: str, events: list[NewEvent], collected_at: float
    ) -> IngestResult:
        # What needs nothing from the database is built before the write lock, which the
        # server's workers take in turn: the lock is the ingest bottleneck.
        newest = newest_version(events)
        guess = self._pks.cached(account_id, connector_id)
        ready = None if guess is None else ready_rows(events)
        prebuilt: list[tuple[int, float, float, float, str, bytes]] | None = None
        if guess is not None and ready is not None:
            a = collected_at
            prebuilt = [(guess, t, n, a, k, doc) for t, n, k, doc in ready]
        failing = fleet.has_failure(events)  # issue 9
        with self._write() as conn:
            cpk = self._ingest_pk(conn, account_id, connector_id)
            if prebuilt is not None and cpk == guess:
                rows = prebuilt
            else:
                rows = self._number_and_dedupe(conn, cpk, events, collected_at)
            duplicates = len(events) - len(rows)
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                duplicates += self._insert_checking(conn, rows, events)
            conn.execute("RELEASE batch")
            self._heartbeat(conn, cpk, newest, collected_at)
            if failing:  # issue 9
                fleet.keep_failure(conn, "?", cpk, rows, 1, 2, 4)
            return IngestResult(accepted=len(events) - duplicates, duplicates=duplicates)

    def _ingest_pk(self, conn: sqlite3.Connection, account_id: str, connector_id: str) -> int:
        """The connector's pk, looked up inside the write transaction (so it is current),
        and remembered as the next batch's guess for rows built before the lock."""
        cpk = self._connector_pk(conn, account_id, connector_id)
        self._pks.remember(account_id, connector_id, cpk)
        return cpk

    @staticmethod
    def _heartbeat(
        conn: sqlite3.Connection,
        cpk: int,
        newest: tuple[float, str] | None,
        collected_at: float,
    ) -> None:
        """Ingest is a sign of life; the newest item's version is the one last seen,
        unless telemetry recorded later was already seen (an agent replaying its spool)."""
        newest_t, newest_v = newest if newest is not None else (None, None)
        conn.execute(
            "UPDATE connectors SET last_heartbeat = ?, "
            "last_seen_version = CASE WHEN ?2 IS NOT NULL AND (last_seen_t IS NULL OR "
            "?2 >= last_seen_t) THEN ?3 ELSE last_seen_version END, "
            "last_seen_t = CASE WHEN ?2 IS NOT NULL AND (last_seen_t IS NULL OR "
            "?2 >= last_seen_t) THEN ?2 ELSE last_seen_t END WHERE pk = ?4",
            (rfc3339(collected_at), newest_t, newest_v, cpk),
        )

    @staticmethod
    def _number_and_dedupe(
        conn: sqlite3.Connection, cpk: int, events: list[NewEvent], a: float
    ) -> list[tuple[int, float, float, float, str, bytes]]:
        """Rows to insert (see ``rows.number_events``)."""
        stored: dict[float, float] = {}
        for t in unnumbered_times(events):
            (top,) = conn.execute(
                "SELECT max(n) FROM events WHERE cpk=? AND t=?", (cpk, t)
            ).fetchone()
            if top is not None:
                stored[t] = top
        return [(cpk, t, n, a, k, doc) for t, n, k, doc in number_events(events, stored)]

    @staticmethod
    def _insert_checking(
        conn: sqlite3.Connection,
        rows: list[tuple[int, float, float, float, str, bytes]],
        events: list[NewEvent],
    ) -> int:
        """The slow path, taken when part of a batch is already stored."""
        index_of = {(ev.t, ev.n): ev.index for ev in events if ev.n is not None}
        duplicates = 0
        for row in rows:
            cur = conn.execute("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)", row)
            if cur.rowcount == 1:
                continue
            (stored,) = conn.execute(
                "SELECT doc FROM events WHERE cpk=? AND t=? AND n=?", row[:3]
            ).fetchone()
            if not same_content(stored, row[5]):
                index = index_of.get((row[1], row[2]), "?")
                raise Conflict(
                    f"events[{index}]: an event with t={row[1]:g} and n={row[2]:g} is already "
                    "stored with different content"
                )
            duplicates += 1
        return duplicates

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
        # With a cursor, the cursor is the range's start (it lies within from..to, the
        # cursor being bound to them): SQLite then seeks to it instead of scanning from
        # ``from`` and filtering, which made late pages cost O(position).
        if after is None:
            sql = "SELECT a, k, n, t FROM events WHERE cpk=? AND t>=? AND t<=?"
            args: list[object] = [cpk, t_from, t_to]
        else:
            sql = "SELECT a, k, n, t FROM events WHERE cpk=? AND (t, n) > (?, ?) AND t<=?"
            args = [cpk, *after, t_to]
        if kind is not None:
            sql += " AND k=?"
            args.append(kind)
        sql += " ORDER BY t, n LIMIT ?"
        args.append(limit)
        found = [EventMeta(*row) for row in self.reader.execute(sql, args)]
        if not found:
            self._pks.recheck(account_id, connector_id)
        return found

    def latest_events(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        cpk = self._pks.get(account_id, connector_id)
        rows = self.reader.execute(
            "SELECT doc FROM events WHERE cpk=? ORDER BY t DESC, n DESC LIMIT ?", (cpk, limit)
        ).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [doc for (doc,) in rows]

    def get_event(
        self, account_id: str, connector_id: str, keys: list[tuple[float, float]]
    ) -> bytes | None:
        cpk = self._pks.get(account_id, connector_id)
        execute = self.reader.execute
        for t, n in keys:
            row = execute(
                "SELECT doc FROM events WHERE cpk=? AND t=? AND n=?", (cpk, t, n)
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
        unique = dedupe_snapshots(snapshots)
        seen = {snap.t: snap for snap in unique}
        newest = newest_version(snapshots)
        with self._write() as conn:
            cpk = self._ingest_pk(conn, account_id, connector_id)
            rows = [(cpk, snap.t, collected_at, snap.doc) for snap in unique]
            duplicates = len(snapshots) - len(rows)
            conn.execute("SAVEPOINT batch")
            try:
                conn.executemany("INSERT INTO snapshots VALUES (?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO batch")
                for row in rows:
                    cur = conn.execute("INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?)", row)
                    if cur.rowcount == 1:
                        continue
                    (stored,) = conn.execute(
                        "SELECT doc FROM snapshots WHERE cpk=? AND t=?", row[:2]
                    ).fetchone()
                    if not same_content(stored, row[3]):
                        raise Conflict(
                            f"snapshots[{seen[row[1]].index}]: a snapshot with t={row[1]:g} "
                            "is already stored with different content"
                        ) from None
                    duplicates += 1
            conn.execute("RELEASE batch")
            self._heartbeat(conn, cpk, newest, collected_at)
            fleet.keep_health(conn, "?", cpk, snapshots)  # issue 9
            return IngestResult(accepted=len(snapshots) - duplicates, duplicates=duplicates)

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
        lower = ">=" if after is None else ">"
        sql = f"SELECT a, t FROM snapshots WHERE cpk=? AND t {lower} ? AND t<=?"
        args: list[object] = [cpk, t_from if after is None else after, t_to]
        rows = self.reader.execute(sql + " ORDER BY t LIMIT ?", [*args, limit]).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [(a, t) for a, t in rows]

    def latest_snapshots(self, account_id: str, connector_id: str, limit: int) -> list[bytes]:
        cpk = self._pks.get(account_id, connector_id)
        rows = self.reader.execute(
            "SELECT doc FROM snapshots WHERE cpk=? ORDER BY t DESC LIMIT ?", (cpk, limit)
        ).fetchall()
        if not rows:
            self._pks.recheck(account_id, connector_id)
        return [doc for (doc,) in rows]

    def get_snapshot(self, account_id: str, connector_id: str, t: float) -> bytes | None:
        cpk = self._pks.get(account_id, connector_id)
        row = self.reader.execute(
            "SELECT doc FROM snapshots WHERE cpk=? AND t=?", (cpk, t)
        ).fetchone()
        if row is None:
            self._pks.recheck(account_id, connector_id)
            return None
        return row[0]  # type: ignore[no-any-return]

    # -- interrupts -----------------------------------------------------------

    _INTERRUPT = "SELECT id, action, purge, submitted_at, triggered_at FROM interrupts"

    @staticmethod
    def _interrupt(row: tuple[Any, ...]) -> Interrupt:
        return Interrupt(int(row[0]), str(row[1]), bool(row[2]), str(row[3]), row[4])

    def create_interrupt(
        self, account_id: str, connector_id: str, action: str, purge: bool, submitted_at: str
    ) -> Interrupt:
        with self._write() as conn:
            cpk = self._connector_pk(conn, account_id, connector_id)
            try:
                cur = conn.execute(
                    "INSERT INTO interrupts (cpk, action, purge, submitted_at) VALUES (?, ?, ?, ?)",
                    (cpk, action, int(purge), submitted_at),
                )
            except sqlite3.IntegrityError:
                raise Conflict(
                    f"connector {connector_id} already has a pending interrupt; it must be "
                    "picked up before another is submitted"
                ) from None
            return Interrupt(int(cur.lastrowid or 0), action, purge, submitted_at)

    def list_interrupts(self, account_id: str, connector_id: str) -> list[Interrupt]:
        conn = self.reader
        cpk = self._connector_pk(conn, account_id, connector_id)
        rows = conn.execute(self._INTERRUPT + " WHERE cpk=? ORDER BY id", (cpk,)).fetchall()
        return [self._interrupt(row) for row in rows]

    def pick_up_interrupts(
        self, account_id: str, connector_id: str, triggered_at: str
    ) -> list[Interrupt]:
        with self._write() as conn:
            cpk = self._connector_pk(conn, account_id, connector_id)
            rows = conn.execute(
                self._INTERRUPT + " WHERE cpk=? AND triggered_at IS NULL ORDER BY id", (cpk,)
            ).fetchall()
            conn.execute(
                "UPDATE interrupts SET triggered_at=? WHERE cpk=? AND triggered_at IS NULL",
                (triggered_at, cpk),
            )
            conn.execute("UPDATE connectors SET last_heartbeat=? WHERE pk=?", (triggered_at, cpk))
        return [Interrupt(int(r[0]), str(r[1]), bool(r[2]), str(r[3]), triggered_at) for r in rows]

    # -- retention, export and import ----------------------------------------

    def purge_telemetry(self, before_t: float, batch: int) -> int:
        """Bounded deletes, one short write transaction each, so ingest is never
        blocked for long: the caller loops (yielding the lock) until 0."""
        gone = 0
        for table, key in (("events", "cpk, t, n"), ("snapshots", "cpk, t")):
            with self._write() as conn:
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE ({key}) IN "
                    f"(SELECT {key} FROM {table} WHERE t < ? LIMIT ?)",
                    (before_t, batch - gone),
                )
                gone += cur.rowcount
            if gone >= batch:
                break
        return gone

    def export_events(
        self, account_id: str, connector_id: str, after: tuple[float, float] | None, limit: int
    ) -> list[tuple[float, float, float, str, bytes]]:
        cpk = self._connector_pk(self.reader, account_id, connector_id)
        sql = "SELECT t, n, a, k, doc FROM events WHERE cpk=?"
        args: list[object] = [cpk]
        if after is not None:
            sql += " AND (t, n) > (?, ?)"
            args += after
        rows = self.reader.execute(sql + " ORDER BY t, n LIMIT ?", [*args, limit]).fetchall()
        return [tuple(row) for row in rows]

    def export_snapshots(
        self, account_id: str, connector_id: str, after: float | None, limit: int
    ) -> list[tuple[float, float, bytes]]:
        cpk = self._connector_pk(self.reader, account_id, connector_id)
        sql = "SELECT t, a, doc FROM snapshots WHERE cpk=?"
        args: list[object] = [cpk]
        if after is not None:
            sql += " AND t > ?"
            args.append(after)
        rows = self.reader.execute(sql + " ORDER BY t LIMIT ?", [*args, limit]).fetchall()
        return [tuple(row) for row in rows]

    def import_connector(self, connector: Connector) -> bool:
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM connectors WHERE account_id=? AND id=?",
                (connector.account_id, connector.id),
            ).fetchone()
            if exists:
                return False
            conn.execute(
                f"INSERT INTO connectors ({CONNECTOR_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                connector_values(connector),
            )
            self._bump_credentials(conn)
            return True

    def import_events(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, float, str, bytes]]
    ) -> int:
        with self._write() as conn:
            cpk = self._connector_pk(conn, account_id, connector_id)
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO events (cpk, t, n, a, k, doc) VALUES (?, ?, ?, ?, ?, ?)",
                [(cpk, *row) for row in rows],
            )
            added = conn.total_changes - before
            fleet.keep_failure(conn, "?", cpk, rows, 0, 1, 3)  # issue 9
            return added

    def import_snapshots(
        self, account_id: str, connector_id: str, rows: list[tuple[float, float, bytes]]
    ) -> int:
        with self._write() as conn:
            cpk = self._connector_pk(conn, account_id, connector_id)
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO snapshots (cpk, t, a, doc) VALUES (?, ?, ?, ?)",
                [(cpk, *row) for row in rows],
            )
            return conn.total_changes - before
