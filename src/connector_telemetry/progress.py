"""The CLI's one progress bar (rich), on stderr and only on a terminal: export, import and
the client's long ``list`` reads use it.

    export ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━   12,345 events

With a ``total`` it shows a bar and a percentage, without one a running count."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, TaskProgressColumn, TextColumn
from rich.progress import Progress as _Rich


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
        self.note = ""
        self._bar: _Rich | None = None
        self._task: Any = None

    def _start(self) -> _Rich:
        if self._bar is None:
            columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
            if self.total:
                columns.append(TaskProgressColumn())
            columns.append(TextColumn("{task.completed:,} {task.fields[note]}"))
            self._bar = _Rich(
                *columns,
                console=Console(file=self.stream, force_terminal=self.enabled or None),
                transient=False,
                refresh_per_second=10,
            )
            self._task = self._bar.add_task(self.label, total=self.total, note=self.note)
            self._bar.start()
        return self._bar

    def advance(self, count: int = 1, note: str = "") -> None:
        self.done += count
        self.note = note or self.note
        if self.enabled:
            self._start().update(self._task, completed=self.done, note=self.note)

    def close(self) -> None:
        if self.enabled:
            bar = self._start()
            bar.update(self._task, completed=self.done, note=self.note)
            bar.stop()
