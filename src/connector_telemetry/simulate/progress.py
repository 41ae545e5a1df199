"""A one-line progress bar on stderr (no dependency):

    [############..................]  42% connectors 3/10, 12,345 events, 2,016 snapshots

Redrawn at most ten times a second, and only on a terminal; the wall clock is used
for that and for the closing summary, never for the data."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_EVERY = 0.1


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total_connectors = self.total_events = self.total_snapshots = 0
        self.connectors = self.events = self.snapshots = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._closed = False

    @classmethod
    def disabled(cls) -> Progress:
        return cls(enabled=False)

    def start(self, *, connectors: int, events: int, snapshots: int) -> None:
        self.total_connectors, self.total_events = connectors, events
        self.total_snapshots = snapshots
        self.started = time.monotonic()
        self._draw(force=True)

    def advance(self, *, connectors: int = 0, events: int = 0, snapshots: int = 0) -> None:
        self.connectors += connectors
        self.events += events
        self.snapshots += snapshots
        self._draw()

    def line(self) -> str:
        total = self.total_connectors + self.total_events + self.total_snapshots
        done = self.connectors + self.events + self.snapshots
        share = done / total if total else 1.0
        filled = round(share * _WIDTH)
        return (
            f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {int(share * 100):3d}% "
            f"connectors {self.connectors}/{self.total_connectors}, "
            f"{self.events:,} events, {self.snapshots:,} snapshots"
        )

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._drawn >= _EVERY:
            self._drawn = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (to print something else on the terminal); it comes back at
        the next update."""
        if self.enabled and not self._closed:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = 0.0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return (
            f"created {self.connectors} connector(s) with {self.events:,} events and "
            f"{self.snapshots:,} snapshots in {seconds:.1f} s"
        )
