"""What every handler shares: the store, the settings, the single writer thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from connector_telemetry.api.auth import Authenticator
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Body, Handler, Schema, ref
from connector_telemetry.service.ingest import record_body
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store

T = TypeVar("T")
INGEST_RESULT = ref("IngestResult")


class Context:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.auth = Authenticator(store, settings.auth_cache_seconds)
        # One thread does every write of this process: SQLite has one writer anyway,
        # and the event loop stays free for reads while a batch commits.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctel-writer")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread (the dispatcher's, for routes that write)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def ingest(self, parse: Callable[..., Any], record: Callable[..., Any]) -> Handler:
        """An ingest route's handler (events or snapshots), for the writer thread: the body
        parsed and recorded as one step (see ``service.ingest.record_body``);
        ``{accepted, duplicates}``."""
        store, max_items = self.store, self.settings.max_batch_events

        def handler(req: Request) -> Any:
            result = record_body(
                parse,
                record,
                store,
                req.account_id,
                req.connector_id,
                req.body,
                req.ingest_type(),
                max_items,
            )
            return {"accepted": result.accepted, "duplicates": result.duplicates}

        return handler

    def batch(self, item: Schema) -> Body:
        """An ingest body: a JSON array of ``item`` (or NDJSON), up to the batch limit."""
        limit = self.settings.max_batch_events
        return Body({"type": "array", "minItems": 1, "maxItems": limit, "items": item}, ndjson=True)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.store.close()
