"""Storage: ``open_store(settings)`` picks the implementation for ``settings.db``."""

from __future__ import annotations

from connector_telemetry.settings import Settings
from connector_telemetry.store.base import Store


def open_store(settings: Settings) -> Store:
    from connector_telemetry.store.sqlite import SQLiteStore

    return SQLiteStore(settings.db, busy_timeout_ms=settings.busy_timeout_ms)
