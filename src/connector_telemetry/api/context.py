"""What every handler shares: the store, the settings, the single writer thread, and
(PostgreSQL) the read threads."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from connector_telemetry.api.auth import Authenticator
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Body, Handler, Schema, ref
from connector_telemetry.api.writer import Writer
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Staged, Store

if TYPE_CHECKING:
    from connector_telemetry.api.metrics import Metrics

T = TypeVar("T")
INGEST_RESULT = ref("IngestResult")


class Context:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.auth = Authenticator(store, settings.auth_cache_seconds)
        # One thread does every write of this process (see api.writer).
        self.writer = Writer(store.write_timeout)
        #: Where reads run when the store keeps several in flight (``Store.read_threads``:
        #: PostgreSQL, each thread on a connection of its own); None: inline (SQLite).
        self.reads = (
            ThreadPoolExecutor(store.read_threads, "ctel-read", initializer=store.bind_reader)
            if store.read_threads > 0
            else None
        )
        #: ctel's own metrics (api.metrics), or None when ``metrics`` is off.
        self.metrics: Metrics | None = None

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread (the dispatcher's, for routes that write)."""
        if self.metrics is None:
            return await self.writer.run(fn, *args)
        started = time.perf_counter()
        try:
            return await self.writer.run(fn, *args)
        finally:
            self.metrics.write_took(started)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a read thread (``reads`` is not None), in this request's context."""
        run = contextvars.copy_context().run
        loop = asyncio.get_running_loop()
        if self.metrics is None:
            return await loop.run_in_executor(self.reads, run, fn, *args)
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(self.reads, run, fn, *args)
        finally:
            self.metrics.read_took(started)

    def ingest(self, kind: str, parse: Callable[..., Any], record: Callable[..., Any]) -> Handler:
        """An ingest route's handler (events or snapshots): see ``Ingest``."""
        return Ingest(self, kind, parse, record)

    def batch(self, item: Schema) -> Body:
        """An ingest body: a JSON array of ``item`` (or NDJSON), up to the batch limit."""
        limit = self.settings.max_batch_events
        return Body({"type": "array", "minItems": 1, "maxItems": limit, "items": item}, ndjson=True)

    def close(self, timeout: float | None = None) -> None:
        """Stop the writer (waiting up to ``timeout``, by default ``shutdown_timeout_seconds``,
        for a write it runs) and close the store."""
        if timeout is None:
            timeout = self.settings.shutdown_timeout_seconds
        self.writer.close(timeout)
        if self.reads is not None:
            self.reads.shutdown(wait=True, cancel_futures=True)
        self.store.close()


class Ingest:
    """An ingest route's handler (events or snapshots), for the writer thread: the body
    parsed and recorded, a staged write (api.writer's "Overlap": the parsing, and the
    store's preparing, may run while the write before commits); ``{accepted, duplicates}``.
    ``record`` is staged too (``Store.record_events_staged``, ``store.base.at_once``).

    Parsing runs on the writer thread, not on the event loop: that measured ~15% more
    ingest on SQLite, because the loop's thread no longer holds the GIL while the writer,
    which gives it up around every row SQLite steps, waits to get it back."""

    staged = True

    def __init__(
        self, ctx: Context, kind: str, parse: Callable[..., Any], record: Callable[..., Any]
    ) -> None:
        self.ctx, self.kind, self.parse, self.record = ctx, kind, parse, record

    def __call__(self, req: Request) -> Staged[dict[str, int]]:
        items = self.parse(req.body, req.ingest_type(), self.ctx.settings.max_batch_events)
        result = yield from self.record(self.ctx.store, req.account_id, req.connector_id, items)
        if self.ctx.metrics is not None:
            self.ctx.metrics.ingest(self.kind, result.accepted, result.duplicates)
        return {"accepted": result.accepted, "duplicates": result.duplicates}
