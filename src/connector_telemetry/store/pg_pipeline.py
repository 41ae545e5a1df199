"""The hot reads on the event loop: several queries in flight on one connection (libpq's
pipeline mode), no thread (issue 13).

``Pipeline.fetch(query, args)`` sends the statement (prepared on the connection the first
time, then by name: parsed and planned once), a sync after it, and awaits its rows. What
several requests send during one turn of the event loop leaves in one write; the answers
are read when the socket is readable (``loop.add_reader``) and handed, in order, to the
queries that wait for them. Parameters go as text (the server gives them their columns'
types); results come binary, loaded by psycopg's own loaders (``bytea``: the stored
bytes as they are).

The connection lives like ``pg_connections.Reader``'s: it goes where the writes go (a node
reads what it wrote); while no writable host answers it reads from any host that does (a
hot standby) and a thread looks for a writable host every second to move it back (the
old connection finishes what it has in flight, then closes). A connection that breaks
fails the queries in flight with ``psycopg.OperationalError``; each is sent again, once,
on a new one (reads are idempotent), else answered 503 like any lost database. After
failing to connect at all it fails fast for a second. Connecting (rare) runs in a
thread, never on the event loop.

``Lookups`` gathers point lookups of one kind (Get Event): while ``depth`` of its
statements are in flight, the keys asked meanwhile wait and leave together in the next
one, a single statement over arrays of keys (``unnest``). Under load one statement, one
result and one plan serve tens of requests (PostgreSQL's CPU per lookup halves; the
event loop reads one result instead of tens); a lone request still leaves at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

from connector_telemetry.store.pg_connections import Conn, Follower
from connector_telemetry.store.pg_script import array_literal, text_value

log = logging.getLogger("connector_telemetry")

_OK = pq.ExecStatus.TUPLES_OK
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_FAILED = pq.ExecStatus.FATAL_ERROR
_BINARY = pq.Format.BINARY
_BAD = pq.ConnStatus.BAD
_PLACEHOLDER = re.compile(r"%[s%]")


class LinkLost(psycopg.OperationalError):
    """The read connection broke with the query in flight (not the query failing): it can
    be sent again on a new connection."""


def numbered(query: str) -> bytes:
    """psycopg's ``%s`` placeholders as PostgreSQL's ``$1, $2, ...`` (``%%``: ``%``)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, query).encode()


def array_text(values: Sequence[Any]) -> bytes:
    """Scalars (or NULL) as a PostgreSQL array literal in text format."""
    return array_literal(values).encode()


def as_text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format: a scalar, or a list of them as an array."""
    if value is None:
        return None
    if isinstance(value, list):
        return array_text(value)
    return text_value(value).encode()


class _Step:
    """What was sent and awaits its results, in order: a statement prepared on the
    connection, or a query (``future`` set: its rows go there)."""

    __slots__ = ("aborted", "error", "future", "name", "params", "query", "rows")

    def __init__(
        self,
        name: bytes,
        query: bytes,
        params: Sequence[bytes | None],
        future: asyncio.Future[list[Any]] | None,
    ):
        self.name, self.query, self.params, self.future = name, query, params, future
        self.rows: list[Any] = []
        self.error: BaseException | None = None
        self.aborted = False  # skipped by the server: an earlier statement of its batch failed


_SYNC = None  # in ``_Link.steps``: the end of a batch (its PIPELINE_SYNC result)


class _Link:
    """One connection in pipeline mode, bound to one event loop. What is sent during one
    turn of the loop is one batch: its statements, then a sync (one write; the server runs
    them in order). A statement that fails (``statement_timeout``) fails its query; the
    server skips the rest of its batch, which are sent again."""

    def __init__(self, conn: Conn, loop: asyncio.AbstractEventLoop, standby: bool):
        self.conn, self.loop, self.standby = conn, loop, standby
        self.pgconn = conn.pgconn
        self.fd = self.pgconn.socket
        self.steps: deque[_Step | None] = deque()
        self.prepared: set[bytes] = set()
        self.broken = False
        self.retired = False
        self._batching = False
        self._unsynced = 0  # statements sent since the last sync
        self._loader = Transformer(conn)
        self.pgconn.nonblocking = 1
        self.pgconn.enter_pipeline_mode()
        loop.add_reader(self.fd, self._readable)

    def usable(self, loop: asyncio.AbstractEventLoop) -> bool:
        return not self.broken and not self.retired and self.loop is loop

    def send(
        self, name: bytes, query: bytes, params: Sequence[bytes | None]
    ) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        self._send(_Step(name, query, params, future))
        return future

    def _send(self, step: _Step) -> None:
        pgconn = self.pgconn
        try:
            if step.name not in self.prepared:
                # in a batch of its own: a statement failing earlier in a batch makes the
                # server skip the rest of it, and batches sent meanwhile would use a
                # statement that does not exist
                if self._unsynced:
                    self._sync()
                pgconn.send_prepare(step.name, step.query)
                self.prepared.add(step.name)
                self.steps.append(_Step(step.name, step.query, (), None))
                self._sync()
            pgconn.send_query_prepared(step.name, step.params, result_format=_BINARY)
        except psycopg.Error as exc:
            self._break(exc)
            raise LinkLost(f"the read connection broke: {exc}") from exc
        self.steps.append(step)
        self._unsynced += 1
        if not self._batching:
            self._batching = True
            self.loop.call_soon(self._end_batch)

    def _end_batch(self) -> None:
        """The sync after this turn's statements, and the write of them all."""
        self._batching = False
        if self.broken:
            return
        try:
            if self._unsynced:
                self._sync()
            more = self.pgconn.flush()
        except psycopg.Error as exc:
            self._break(exc)
            return
        if more:  # the socket is full: go on when it takes more (libpq may read meanwhile)
            self.loop.add_writer(self.fd, self._flush_more)

    def _sync(self) -> None:
        """End the batch sent so far (libpq sends what it can)."""
        self.pgconn.pipeline_sync()
        self.steps.append(_SYNC)
        self._unsynced = 0

    def _flush_more(self) -> None:
        try:
            more = self.pgconn.flush()
        except psycopg.Error as exc:
            self._break(exc)
            return
        if not more:
            self.loop.remove_writer(self.fd)
        self._readable()

    def _readable(self) -> None:
        pgconn, steps = self.pgconn, self.steps
        try:
            pgconn.consume_input()
            if pgconn.status == _BAD:
                raise psycopg.OperationalError("the server closed the connection")
            while steps and not pgconn.is_busy():
                result = pgconn.get_result()
                head = steps[0]
                if head is _SYNC:
                    if result is not None and result.status == _PIPELINE_SYNC:
                        steps.popleft()
                    continue
                if result is None:  # the end of the head statement's results
                    steps.popleft()
                    self._done(head)
                    continue
                status = result.status
                if status == _OK:
                    if result.ntuples:
                        loader = self._loader
                        loader.set_pgresult(result, set_loaders=True, format=_BINARY)
                        head.rows = loader.load_rows(0, result.ntuples, tuple)
                elif status == _ABORTED:
                    head.aborted = True
                elif status == _FAILED and head.error is None:
                    head.error = psycopg.errors.error_from_result(result)
        except psycopg.Error as exc:
            self._break(exc)
            return
        if self.retired and not steps:
            self.close()

    def _done(self, step: _Step) -> None:
        future = step.future
        if future is None:  # a statement prepared
            if step.aborted or step.error is not None:
                self.prepared.discard(step.name)  # (prepared again with its query's resend)
        elif future.done():
            pass
        elif step.aborted:
            step.aborted, step.rows = False, []
            self._send(step)  # once the batch's failure is past
        elif step.error is not None:
            future.set_exception(step.error)
        else:
            future.set_result(step.rows)

    def _break(self, exc: BaseException) -> None:
        """The connection is lost: whatever waits on it fails (and is sent again)."""
        if self.broken:
            return
        self.broken = True
        error = LinkLost(f"the read connection broke: {exc}")
        while self.steps:
            step = self.steps.popleft()
            if step is not None and step.future is not None and not step.future.done():
                step.future.set_exception(error)
        self.close()

    def retire(self) -> None:
        """No new queries; closed once those in flight are answered."""
        self.retired = True
        if not self.steps:
            self.close()

    def close(self) -> None:
        self.broken = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
            self.loop.remove_writer(self.fd)
        self.conn.close()


class Pipeline:
    """The read connection of one process's event loop (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        connect: Callable[[str], Conn],
        name: str,
    ):
        self.url, self.name = url, name
        self._hosts = Follower(url, connect, f"{name}-pipeline", found=self._found)
        self._link: _Link | None = None
        self._opening: asyncio.Future[_Link] | None = None
        self._lock = threading.Lock()
        self._statements: dict[str, tuple[bytes, bytes]] = {}  # query -> (name, $n text)

    async def fetch(self, query: str, args: Sequence[Any], *, again: bool = True) -> list[Any]:
        """The rows of one statement (a connection lost meanwhile: sent again, once, unless
        not ``again``)."""
        statement, params = self._statement(query), [as_text(arg) for arg in args]
        link = self._ready() or await self._current()
        try:
            return await link.send(*statement, params)
        except LinkLost:
            if not again:
                raise
        link = await self._current()
        return await link.send(*statement, params)

    def fetch_now(self, query: str, args: Sequence[Any]) -> asyncio.Future[list[Any]] | None:
        """``fetch`` without a coroutine, when the connection is ready (else None: ``fetch``
        connects): the future of the statement's rows, failed with ``LinkLost`` if the
        connection breaks meanwhile (not sent again)."""
        link = self._ready()
        if link is None:
            return None
        statement, params = self._statement(query), [as_text(arg) for arg in args]
        try:
            return link.send(*statement, params)
        except LinkLost:
            return None

    def _ready(self) -> _Link | None:
        """The connection, if it can take a query now (else ``_current`` finds one)."""
        link = self._link
        if link is None or self._hosts.waiting or not link.usable(asyncio.get_running_loop()):
            return None
        return link

    def _statement(self, query: str) -> tuple[bytes, bytes]:
        """The name ``query`` is prepared under on every connection, and its ``$n`` text."""
        statement = self._statements.get(query)
        if statement is None:
            statement = (f"ctel_r{len(self._statements)}".encode(), numbered(query))
            self._statements[query] = statement
        return statement

    async def _current(self) -> _Link:
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        link = self._link
        if link is not None and link.usable(loop):
            return link
        if link is not None:
            link.retire()
            self._link = None
        opening = self._opening
        if opening is not None and opening.get_loop() is loop:
            return await asyncio.shield(opening)  # another request is connecting already
        opening = self._opening = loop.create_future()
        try:
            conn, standby = await loop.run_in_executor(None, self._hosts.open)
            try:
                link = self._link = _Link(conn, loop, standby)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            opening.set_exception(exc)
            opening.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            self._opening = None
        opening.set_result(link)
        return link

    def _found(self) -> None:
        """(The follower's thread.) Move now, not at the next read: none may come soon."""
        link = self._link
        if link is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed: the next read moves
                link.loop.call_soon_threadsafe(self._adopt, link.loop)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Onto the connection the follower found (a writable host again), on ``loop``;
        the old one closes once its answers are in."""
        found = self._hosts.take()
        if found is None:
            return
        if self._link is not None:
            self._link.retire()
        try:
            self._link = _Link(found, loop, standby=False)
        except BaseException:
            self._link = None
            found.close()
            raise
        log.warning("%s: reading from the writable host again", self.name)

    def close(self) -> None:
        """Close the connection(s); from any thread (queries in flight fail)."""
        self._hosts.close()
        with self._lock:
            link, self._link = self._link, None
        if link is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is link.loop or link.loop.is_closed() or not link.loop.is_running():
            link._break(psycopg.OperationalError("the store is closed"))
        else:
            link.loop.call_soon_threadsafe(
                link._break, psycopg.OperationalError("the store is closed")
            )


class Lookups:
    """Point lookups gathered into one statement (see the module's docstring).

    ``query`` takes one array per key column (``%s`` each, in the keys' order) and answers
    rows ``(i, value)``: ``i`` the 1-based position of a key found (``WITH ORDINALITY``),
    ``value`` what it found. ``get(keys)`` answers the value of the first of ``keys`` found,
    else None; one of its statements failing fails every request it carried.

    A request leaves at once (at the end of the loop's turn, with whatever else arrived)
    when no statement of ours is in flight. While one is, the requests asked meanwhile wait
    for it to land, or leave sooner in a statement of their own once ``fill`` of them wait
    (at most ``depth`` in flight). Under load each statement then carries at least ``fill``
    requests: through a network, where a statement is in flight for a round trip, that is
    what keeps the node's CPU per request (and the packets) down."""

    def __init__(self, pipeline: Pipeline, query: str, *, depth: int = 4, fill: int = 8):
        self._pipeline, self._query = pipeline, query
        self.depth, self.fill = max(1, depth), max(1, fill)
        self._waiting: list[tuple[Sequence[Sequence[Any]], asyncio.Future[Any]]] = []
        self._flying = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, keys: Sequence[Sequence[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((keys, future))
        if not self._scheduled and self._may_launch():
            self._scheduled = True
            loop.call_soon(self._launch)  # after this turn: what else arrives goes along
        return await future

    def _may_launch(self) -> bool:
        flying = self._flying
        return flying == 0 or (flying < self.depth and len(self._waiting) >= self.fill)

    def _launch(self) -> None:
        self._scheduled = False
        if not self._waiting or not self._may_launch():
            return  # (the statement in flight that lands next launches them)
        batch, self._waiting = self._waiting, []
        self._flying += 1
        owners, columns = _columns([keys for keys, _ in batch])
        if not owners:
            self._answered(batch, owners, [])
            return
        future = self._pipeline.fetch_now(self._query, columns)
        if future is None:  # no connection ready: connect in a task
            self._in_task(batch, owners, columns)
            return

        def landed(future: asyncio.Future[list[Any]]) -> None:
            error = future.exception()
            if error is None:
                self._answered(batch, owners, future.result())
            elif isinstance(error, LinkLost):
                self._in_task(batch, owners, columns, again=False)  # sent again, once
            else:
                self._failed(batch, error)

        future.add_done_callback(landed)

    def _in_task(
        self, batch: _Batch, owners: list[int], columns: list[list[Any]], *, again: bool = True
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch, owners, columns, again))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: _Batch, owners: list[int], columns: list[list[Any]], again: bool
    ) -> None:
        try:
            rows = await self._pipeline.fetch(self._query, columns, again=again)
        except BaseException as exc:
            self._failed(batch, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self._answered(batch, owners, rows)

    def _answered(self, batch: _Batch, owners: list[int], rows: list[Any]) -> None:
        """Each request's answer: the value of the first of its keys found."""
        answers: list[Any] = [None] * len(batch)
        found = dict(rows)
        for i, owner in enumerate(owners, 1):
            if answers[owner] is None and i in found:
                answers[owner] = found[i]
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
        self._landed()

    def _failed(self, batch: _Batch, exc: BaseException) -> None:
        error = exc if isinstance(exc, Exception) else psycopg.OperationalError(str(exc))
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
        self._landed()

    def _landed(self) -> None:
        self._flying -= 1
        if self._waiting and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)


_Batch = list[tuple[Sequence[Sequence[Any]], asyncio.Future[Any]]]


def _columns(asked: list[Sequence[Sequence[Any]]]) -> tuple[list[int], list[list[Any]]]:
    """The keys of several requests as one array per key column; ``owners[i]``: the
    request that asked key ``i + 1``."""
    owners: list[int] = []
    columns: list[list[Any]] = []
    for owner, keys in enumerate(asked):
        for key in keys:
            if not columns:
                columns = [[] for _ in key]
            for column, value in zip(columns, key, strict=True):
                column.append(value)
            owners.append(owner)
    return owners, columns
