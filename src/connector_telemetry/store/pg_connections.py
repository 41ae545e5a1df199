"""The PostgreSQL store's connections, and how they live through failovers.

Writes (``Writers``): a small pool with no threads of its own. A write takes an idle
connection (checked with an empty query first) or opens one, in its own thread; while no
host takes it, it tries again every 50 to 500 ms until its deadline
(``store.base.WRITE_DEADLINE``, else ``pool_timeout_seconds`` from now), then answers 503.
With a multi-host URL every attempt walks the hosts in order and libpq keeps the first that
matches ``target_session_attrs`` (``read-write``: the primary), so a promoted standby is
found on the next attempt, however long the outage was. A connection that broke, or whose
server turned read-only under it (a demoted or fenced primary), is closed, never reused.

Reads (``Reader``): one autocommit connection per process (reads run inline on the event
loop). It goes where the writes go, so a node reads what it wrote; while no writable host
answers it reads from any host that does (a hot standby: reads go on through a failover),
and a thread looks for a writable host every second to move it back. After failing to
connect at all it fails fast for a second (no host to wait for on every request).

Nothing here knows SQL beyond the empty query that checks a connection.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from connector_telemetry.errors import Unavailable
from connector_telemetry.store.base import WRITE_DEADLINE

Conn = psycopg.Connection[Any]
Params = Any

log = logging.getLogger("connector_telemetry")

#: Pauses between connection attempts of one write: doubling from the first to the last.
_FIRST_PAUSE, _LAST_PAUSE = 0.05, 0.5
#: Connections are replaced after this long (server-side memory does not pile up), and idle
#: ones beyond ``min_size`` are closed after this long unused.
_MAX_LIFETIME, _MAX_IDLE = 3600.0, 600.0
#: After the reader failed to connect, fail fast for this long instead of retrying on every
#: request; while it reads from a standby, look for a writable host this often.
RECONNECT_PAUSE = 1.0
FOLLOW_PAUSE = 1.0
#: target_session_attrs values that leave hosts out which could still serve reads.
_PICKY = frozenset(("read-write", "primary"))


def connect(url: str, timeout: float, configure: Callable[[Conn], None]) -> Conn:
    """An autocommit connection, configured; ``timeout`` applies to each host tried
    (libpq counts whole seconds, at least 2)."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=max(2, math.ceil(timeout)))
    try:
        configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def read_connection(url: str, timeout: float, configure: Callable[[Conn], None]) -> Conn:
    """``connect`` for reads: every read is a short indexed lookup, planned once per
    statement. (Left to itself, PostgreSQL re-plans each call on partitioned tables,
    which doubles the latency of Get Event.)"""
    conn = connect(url, timeout, configure)
    try:
        conn.execute("SET plan_cache_mode = force_generic_plan")
    except BaseException:
        conn.close()
        raise
    return conn


def any_host(url: str) -> str | None:
    """``url`` with ``target_session_attrs=any``; None when ``url`` already takes any host."""
    params = conninfo_to_dict(url)
    if params.get("target_session_attrs") not in _PICKY:
        return None
    params["target_session_attrs"] = "any"
    return make_conninfo("", **params)


def read_only(exc: BaseException) -> bool:
    """The server refused a write because it is read-only (a standby, a demoted primary,
    or ``default_transaction_read_only``)."""
    return isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)


class Writers:
    """Connections for writes (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float,
        connect_timeout: float,
        configure: Callable[[Conn], None],
        name: str,
    ):
        self.url, self.name = url, name
        self.timeout = timeout
        self._min_size, self._max_size = min_size, max(1, min_size, max_size)
        self._connect_timeout = connect_timeout
        self._configure = configure
        self._changed = threading.Condition()
        self._idle: list[tuple[Conn, float]] = []  # (connection, when it was put back)
        self._count = 0  # open connections: idle, in use, or being opened
        self._born: dict[Conn, float] = {}  # open connections: when each was opened
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection to a writable host, by the write's deadline (else ``Unavailable``)."""
        deadline = WRITE_DEADLINE.get()
        conn = self._get(time.monotonic() + self.timeout if deadline is None else deadline)
        try:
            yield conn
        except Exception as exc:
            if read_only(exc):
                self._discard(conn)
                log.warning("%s: the database host turned read-only: %s", self.name, exc)
                raise Unavailable(
                    "the database host is read-only (a standby or a demoted primary); retry shortly"
                ) from exc
            self._put(conn)
            raise
        except BaseException:
            self._discard(conn)
            raise
        self._put(conn)

    def state(self) -> tuple[int, int, int]:
        """``(open, idle, max)`` connections (open: idle, in use or being opened)."""
        with self._changed:
            return self._count, len(self._idle), self._max_size

    def _get(self, deadline: float) -> Conn:
        pause = _FIRST_PAUSE
        while True:
            conn = self._reserve(deadline)
            if conn is not None:
                if self._works(conn):
                    return conn
                self._discard(conn)
                continue  # the next idle one, or a new one, at once
            try:
                conn = connect(
                    self.url, min(self._connect_timeout, deadline - time.monotonic()),
                    self._configure,
                )  # fmt: skip
            except psycopg.OperationalError as exc:
                self._forget()
                error = exc
            else:
                self._born[conn] = time.monotonic()
                return conn
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("%s: no writable database host: %s", self.name, error)
                raise Unavailable("no writable database host answered; retry shortly")
            time.sleep(min(pause, left))
            pause = min(2 * pause, _LAST_PAUSE)

    def _reserve(self, deadline: float) -> Conn | None:
        """An idle connection, or None with the right to open one."""
        with self._changed:
            while True:
                if self._closed:
                    raise Unavailable("the store is closed")
                if self._idle:
                    return self._idle.pop()[0]  # the most recent: fewer connections stay warm
                if self._count < self._max_size:
                    self._count += 1
                    return None
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise Unavailable(
                        f"all {self._max_size} database connections of this process stayed "
                        "busy; retry shortly"
                    )

    @staticmethod
    def _works(conn: Conn) -> bool:
        """Whether an idle connection still works, without a round trip when it can tell:
        an idle connection's socket has nothing to read unless the server closed it or
        said something (a notice, a parameter change); only then an empty query decides.
        (A round trip is ~0.5-1 ms to another host: 1 in 6 of an ingest batch's.)"""
        if conn.closed:
            return False
        try:
            waiting = select.poll()  # (not select.select: no limit on the fd's number)
            waiting.register(conn.pgconn.socket, select.POLLIN)
            if not waiting.poll(0):
                return True
            conn.execute("")
        except (psycopg.Error, OSError, ValueError):
            return False
        return True

    def _put(self, conn: Conn) -> None:
        """Back to the idle ones, unless it is broken, old, or the pool closed."""
        now = time.monotonic()
        if (
            conn.closed
            or conn.pgconn.transaction_status != TransactionStatus.IDLE
            or now - self._born.get(conn, now) > _MAX_LIFETIME
        ):
            self._discard(conn)
            return
        stale: list[Conn] = []
        with self._changed:
            if self._closed:
                stale.append(conn)
            else:
                self._idle.append((conn, now))
                while len(self._idle) > self._min_size and now - self._idle[0][1] > _MAX_IDLE:
                    stale.append(self._idle.pop(0)[0])
                self._changed.notify()
        for old in stale:
            self._discard(old)

    def _discard(self, conn: Conn) -> None:
        conn.close()
        self._born.pop(conn, None)
        self._forget()

    def _forget(self) -> None:
        """One connection fewer (closed, or never opened)."""
        with self._changed:
            self._count -= 1
            self._changed.notify()

    def close(self) -> None:
        """Close the idle connections now, those in use when they come back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for conn, _ in idle:
            self._discard(conn)


class Follower:
    """Where a read connection goes, through failovers (for ``Reader`` and
    ``pg_pipeline.Pipeline``): ``open()`` connects to a writable host, else (a multi-host
    URL) to any host that answers (a hot standby) and starts a thread that looks for a
    writable host every ``FOLLOW_PAUSE``; the connection it finds waits in ``take()`` and
    ``found`` is called. After failing to connect at all, ``open()`` fails fast for
    ``RECONNECT_PAUSE``."""

    def __init__(
        self, url: str, connect: Callable[[str], Conn], name: str,
        found: Callable[[], None] | None = None,
    ):  # fmt: skip
        self.url, self.name = url, name
        self._fallback = any_host(url)
        self._connect = connect
        self._on_found = found
        self._found: Conn | None = None
        self._lock = threading.Lock()
        self._failed_at = -math.inf
        self._thread: threading.Thread | None = None
        self.closed = False

    @property
    def waiting(self) -> bool:
        """A connection to a writable host waits in ``take()``."""
        return self._found is not None

    def open(self) -> tuple[Conn, bool]:
        """A new connection and whether it is to a standby (blocking: not on the loop)."""
        if self.closed:
            raise psycopg.OperationalError(f"{self.name}: the store is closed")
        if time.monotonic() - self._failed_at < RECONNECT_PAUSE:
            raise psycopg.OperationalError(f"{self.name} is unreachable; retrying shortly")
        try:
            try:
                return self._connect(self.url), False
            except psycopg.OperationalError:
                if self._fallback is None:
                    raise
                conn = self._connect(self._fallback)
                log.warning("%s: no writable host; reading from a standby", self.name)
                self._follow()
                return conn, True
        except psycopg.OperationalError:
            self._failed_at = time.monotonic()
            raise

    def take(self) -> Conn | None:
        """The connection to a writable host that the thread found, once."""
        with self._lock:
            found, self._found = self._found, None
        return found

    def _follow(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._look_for_primary, name=f"{self.name}-follower", daemon=True
                )
                self._thread.start()

    def _look_for_primary(self) -> None:
        while not self.closed:
            time.sleep(FOLLOW_PAUSE)
            try:
                conn = self._connect(self.url)
            except psycopg.OperationalError:
                continue
            with self._lock:
                if self.closed:
                    stale: Conn | None = conn
                else:
                    stale, self._found = self._found, conn
            if stale is not None:
                stale.close()
            if self._on_found is not None:
                self._on_found()
            return

    def close(self) -> None:
        with self._lock:
            self.closed = True
            found, self._found = self._found, None
        if found is not None:
            found.close()


class Reader:
    """The read connection (see the module's docstring). ``execute`` from any thread; each
    thread has its own cursor."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        configure: Callable[[Conn], None],
        name: str,
    ):
        self.url, self.name = url, name
        self._connect_timeout = connect_timeout
        self._configure = configure
        self._hosts = Follower(url, self._connect, name)
        self._conn: Conn | None = None
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread's cursor

    def execute(
        self, query: str, args: Params = None, *, binary: bool = False
    ) -> psycopg.Cursor[Any]:
        """One statement, through this thread's cursor (its results must be consumed before
        the thread's next read). A connection lost since the last read (a restart, a
        failover, an idle timeout) is replaced and the statement sent again, once: reads
        are idempotent."""
        cur = self._cursor()
        try:
            return cur.execute(query, args, binary=binary)
        except psycopg.OperationalError:
            if not cur.connection.closed:
                raise
        return self._cursor().execute(query, args, binary=binary)

    def _cursor(self) -> psycopg.Cursor[Any]:
        conn = self.connection
        cur: psycopg.Cursor[Any] | None = getattr(self._local, "cursor", None)
        if cur is None or cur.connection is not conn:
            cur = self._local.cursor = conn.cursor()
        return cur

    @property
    def connection(self) -> Conn:
        if self._hosts.waiting:
            self._move()
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._reopen()
        return conn

    def _move(self) -> None:
        """Onto the connection the follower found (a writable host again)."""
        with self._lock:
            found = self._hosts.take()
            old, self._conn = self._conn, found or self._conn
        if found is not None:
            log.warning("%s: reading from the writable host again", self.name)
            if old is not None:
                old.close()

    def _reopen(self) -> Conn:
        with self._lock:
            conn = self._conn
            if conn is None or conn.closed:
                conn = self._conn = self._hosts.open()[0]
            return conn

    def _connect(self, url: str) -> Conn:
        return read_connection(url, self._connect_timeout, self._configure)

    def close(self) -> None:
        self._hosts.close()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
