"""Retention: telemetry (events and snapshots) recorded more than N days ago is
purged in bounded batches, so ingest is never blocked for long. Connectors,
credentials and interrupts are never purged."""

from __future__ import annotations

import time

from connector_telemetry import clock
from connector_telemetry.store.base import Store

BATCH = 5000


def purge(store: Store, retention_days: float, *, pause: float = 0.01) -> int:
    """Purge everything recorded (``t``) before now minus ``retention_days``."""
    if retention_days <= 0:
        raise ValueError("retention days must be positive")
    clock.set_offset(store.test_clock())  # a test database's clock (0 for any other)
    cutoff = clock.now() - retention_days * 86400
    total = 0
    while gone := store.purge_telemetry(cutoff, BATCH):
        total += gone
        time.sleep(pause)  # let a waiting writer in between batches
    return total
