"""What every handler shares: the store, the settings, the single writer thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from connector_telemetry.api import envelope
from connector_telemetry.api.auth import Authenticator
from connector_telemetry.api.request import Request
from connector_telemetry.service.ingest import record_body
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store

T = TypeVar("T")


class Context:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.auth = Authenticator(store, settings.auth_cache_seconds)
        # One thread does every write of this process: SQLite has one writer anyway,
        # and the event loop stays free for reads while a batch commits.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctel-writer")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def record(
        self, req: Request, parse: Callable[..., Any], record: Callable[..., Any]
    ) -> bytes:
        """An ingest request (events or snapshots): parsed and recorded on the writer
        thread (see ``service.ingest.record_body``); ``{accepted, duplicates}``."""
        result = await self.write(
            record_body,
            parse,
            record,
            self.store,
            req.account_id,
            req.connector_id,
            req.body,
            req.ingest_type(),
            self.settings.max_batch_events,
        )
        return envelope.ok({"accepted": result.accepted, "duplicates": result.duplicates})

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.store.close()
