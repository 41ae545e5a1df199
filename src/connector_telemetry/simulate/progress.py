"""``ctel simulate``'s progress: what was sent so far, drawn by the CLI's one progress
bar (``connector_telemetry.progress``, rich) on stderr, only on a terminal:

    simulate ━━━━━━━━━━━━━━━━━━━━━━  35% 14,364 connectors 3/10, 12,345 events, 2,016 snapshots

The wall clock is used for the closing summary, never for the data."""

from __future__ import annotations

import time
from typing import TextIO

from connector_telemetry.progress import Progress as Bar


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.bar = Bar("simulate", stream=stream, enabled=enabled)
        self.enabled = self.bar.enabled
        self.total_connectors = self.total_events = self.total_snapshots = 0
        self.connectors = self.events = self.snapshots = 0
        self.started = time.monotonic()

    @classmethod
    def disabled(cls) -> Progress:
        return cls(enabled=False)

    def start(self, *, connectors: int, events: int, snapshots: int) -> None:
        self.total_connectors, self.total_events = connectors, events
        self.total_snapshots = snapshots
        self.started = time.monotonic()
        self.bar.advance(0, self.counts(), total=connectors + events + snapshots)

    def advance(self, *, connectors: int = 0, events: int = 0, snapshots: int = 0) -> None:
        self.connectors += connectors
        self.events += events
        self.snapshots += snapshots
        self.bar.advance(connectors + events + snapshots, self.counts())

    def counts(self) -> str:
        return (
            f"connectors {self.connectors}/{self.total_connectors}, "
            f"{self.events:,} events, {self.snapshots:,} snapshots"
        )

    def line(self) -> str:
        total = self.total_connectors + self.total_events + self.total_snapshots
        done = self.connectors + self.events + self.snapshots
        share = done / total if total else 1.0
        return f"{int(share * 100):3d}% {self.counts()}"

    def clear(self) -> None:
        """Take the bar off the terminal (to print something else); it comes back at the
        next update."""
        self.bar.clear()

    def close(self) -> None:
        self.bar.close()

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return (
            f"created {self.connectors} connector(s) with {self.events:,} events and "
            f"{self.snapshots:,} snapshots in {seconds:.1f} s"
        )
