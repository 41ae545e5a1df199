"""A small progress bar on stderr (no dependency), silent when stderr is not a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = 0.0
        self.note = ""

    def advance(self, count: int = 1, note: str = "") -> None:
        self.done += count
        self.note = note or self.note
        now = time.monotonic()
        if self.enabled and now - self._shown > 0.1:
            self._shown = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"\r{self.label} [{bar:<30}] {share:4.0%} {self.note}"
        else:
            text = f"\r{self.label} {self.done:,} {self.note}"
        self.stream.write(text[:120].ljust(80))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
