"""What every handler shares: the store, the settings, the single writer thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from connector_telemetry import envelope
from connector_telemetry.api.auth import Authenticator
from connector_telemetry.api.request import Request
from connector_telemetry.api.writer import Writer
from connector_telemetry.service.ingest import record_body
from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store

T = TypeVar("T")


class Context:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.auth = Authenticator(store, settings.auth_cache_seconds)
        # One thread does every write of this process (see api.writer).
        self.writer = Writer(store.write_timeout)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.writer.run(fn, *args)

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

    def close(self, timeout: float | None = None) -> None:
        """Stop the writer (waiting up to ``timeout``, by default ``shutdown_timeout_seconds``,
        for a write it runs) and close the store."""
        if timeout is None:
            timeout = self.settings.shutdown_timeout_seconds
        self.writer.close(timeout)
        self.store.close()
