"""The writer: the one thread that runs every write of this process (SQLite has one writer
anyway, and the event loop stays free for reads while a batch commits).

A write may wait to start for the store's ``write_timeout`` (PostgreSQL:
``pool_timeout_seconds``), counted from when it was asked for: a write still queued at
its deadline is answered 503 then and never runs (even when the write before it is stuck
in the database), and one that starts has what is left to get its connection
(``store.base.WRITE_DEADLINE``). Once it runs, its answer is the database's: a 200 always
means committed.

``give_up`` (on shutdown) answers every write still waiting, and every later one, with 503
at once: queued ones never run; the one running, if any (say a commit that waits for a
synchronous standby that is gone), goes on alone and its outcome is not reported. The
thread is a daemon: a write stuck in the database never keeps the process from exiting.

Overlap (issue 13): a function marked ``staged`` (``staged = True``: an ingest route's
handler) returns a generator, a staged write, which yields first once it is *prepared*
(everything before needs no database: parsing the body, building the rows), and then,
where the store can (PostgreSQL), while the database runs the statements it sent, before
it returns its result. While one write's statements run, the thread takes the next job from
the queue and, if it is staged, prepares it. So a batch is parsed while the one before it
commits, and there is still one write at a time in the database: a job prepared ahead has
not started (a queued write's deadline and 503 hold as above; once abandoned it is dropped,
having touched nothing), and an error of its preparing (a bad body) is answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from connector_telemetry.errors import Unavailable
from connector_telemetry.store.base import WRITE_DEADLINE, Staged, run_staged

T = TypeVar("T")
log = logging.getLogger("connector_telemetry")
_NOTHING: Any = object()  # (no job taken ahead; a job not prepared)


@dataclass(eq=False)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deadline: float | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    started: bool = False
    abandoned: bool = False  # nobody waits for it any more: do not start it
    prepared: Any = _NOTHING  # a staged write prepared ahead (``Writer._take_ahead``)


class Writer:
    def __init__(self, timeout: float | None, name: str = "ctel-writer"):
        self.timeout = timeout
        self.name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._waiting: set[_Job] = set()  # touched on the event loop's thread only
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # a job starts, or is abandoned, never both
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread; 503 when it could not start in time."""
        if self._closed:
            raise Unavailable("the server is shutting down; retry on another node or shortly")
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        job = _Job(fn, args, deadline, loop, loop.create_future())
        self._waiting.add(job)
        self._start()
        self._queue.put(job)
        timer = None if self.timeout is None else loop.call_later(self.timeout, self._expire, job)
        try:
            return await job.future  # type: ignore[no-any-return]
        finally:
            self._drop(job)
            self._waiting.discard(job)
            if timer is not None:
                timer.cancel()

    def _drop(self, job: _Job) -> bool:
        """Never start ``job``; False when it has started already."""
        with self._lock:
            job.abandoned = not job.started
            return job.abandoned

    def _expire(self, job: _Job) -> None:
        if not job.future.done() and self._drop(job):
            job.future.set_exception(self._too_late())

    def _too_late(self) -> Unavailable:
        return Unavailable(f"the store took no write for {self.timeout:g} s; retry shortly")

    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                    self._thread.start()

    def _work(self) -> None:
        ahead = _NOTHING
        while (job := self._queue.get() if ahead is _NOTHING else ahead) is not None:
            ahead = self._run(job)

    def _run(self, job: _Job) -> Any:
        """Run ``job`` (unless abandoned or too late); returns the job taken from the queue
        while its statements ran (``_take_ahead``), or ``_NOTHING``."""
        with self._lock:
            if job.abandoned:
                return _NOTHING
            job.started = True
        if job.deadline is not None and time.monotonic() >= job.deadline:
            self._settle(job, self._too_late(), failed=True)
            return _NOTHING
        ahead = _NOTHING
        token = WRITE_DEADLINE.set(job.deadline)
        try:
            result = job.prepared if job.prepared is not _NOTHING else _prepare(job)
            if _is_staged(job) and isinstance(result, Generator):  # prepared: its database part
                staged = result
                result = _advance(staged)
                if result is _NOTHING:  # its statements run: the next job's turn to prepare
                    ahead = self._take_ahead()
                    result = run_staged(staged)
        except Exception as exc:
            self._settle(job, exc, failed=True)
        else:
            self._settle(job, result)
        finally:
            WRITE_DEADLINE.reset(token)
        return ahead

    def _take_ahead(self) -> Any:
        """The next queued job (None: the thread is to stop), prepared if it is staged;
        ``_NOTHING`` when the queue is empty, or when that job's preparing failed (then
        it is answered here)."""
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            return _NOTHING
        if job is None or job.abandoned or not _is_staged(job):
            return job
        try:
            job.prepared = _prepare(job)
        except Exception as exc:
            with self._lock:
                if job.abandoned:
                    return _NOTHING
                job.started = True
            self._settle(job, exc, failed=True)
            return _NOTHING
        return job

    @staticmethod
    def _settle(job: _Job, outcome: Any, failed: bool = False) -> None:
        def settle() -> None:
            if job.future.done():  # abandoned meanwhile: already answered 503
                return
            if failed:
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            job.loop.call_soon_threadsafe(settle)

    def give_up(self, reason: str) -> int:
        """Answer every write still waiting, and every later one, with 503 (on the event
        loop's thread); returns how many were waiting."""
        self._closed = True
        waiting = [job for job in self._waiting if not job.future.done()]
        for job in waiting:
            self._drop(job)
            job.future.set_exception(Unavailable(reason))
        return len(waiting)

    def close(self, timeout: float) -> bool:
        """No more writes; wait up to ``timeout`` for the thread to finish what it runs.
        False when it is still running (it dies with the process)."""
        self._closed = True
        for job in list(self._waiting):  # the loop stopped: nobody gets their answer
            self._drop(job)
        self._queue.put(None)
        thread = self._thread
        if thread is None:
            return True
        thread.join(max(0.0, timeout))
        if thread.is_alive():
            log.warning("%s: a write still ran at shutdown; left to the database", self.name)
            return False
        return True


def _is_staged(job: _Job) -> bool:
    return getattr(job.fn, "staged", False) is True


def _prepare(job: _Job) -> Any:
    """``job.fn`` called; a staged write run up to its first ``yield`` (prepared), or to
    its end (its result)."""
    result = job.fn(*job.args)
    if not _is_staged(job):
        return result
    done = _advance(result)
    return result if done is _NOTHING else done


def _advance(staged: Staged[Any]) -> Any:
    """Run ``staged`` to its next ``yield`` (``_NOTHING``) or to its end (its result)."""
    try:
        next(staged)
    except StopIteration as done:
        return done.value
    return _NOTHING
