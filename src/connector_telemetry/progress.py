"""The CLI's one progress bar (rich), on stderr and only on a terminal: export, import,
``simulate`` and the client's long ``list`` reads use it.

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
                columns += [TaskProgressColumn(), TextColumn("{task.fields[note]}")]
            else:
                columns.append(TextColumn("{task.completed:,} {task.fields[note]}"))
            self._bar = _Rich(
                *columns,
                console=Console(file=self.stream, force_terminal=self.enabled or None),
                transient=True,  # stop() erases it; close() prints the final line
                redirect_stdout=False,  # stdout stays the command's output, even in a pipe
                redirect_stderr=False,
                refresh_per_second=10,
            )
            self._task = self._bar.add_task(self.label, total=self.total, note=self.note)
            self._bar.start()
        return self._bar

    def advance(self, count: int = 1, note: str = "", *, total: int | None = None) -> None:
        self.done += count
        self.note = note or self.note
        if total is not None:
            self.total = total
        if self.enabled:
            bar = self._start()
            bar.update(self._task, completed=self.done, total=self.total, note=self.note)

    def clear(self) -> None:
        """Take the bar off the terminal (to print something else there); the next
        ``advance`` draws it again."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def close(self) -> None:
        if self.enabled:
            bar = self._start()
            bar.update(self._task, completed=self.done, total=self.total, note=self.note)
            bar.stop()
            bar.console.print(bar.make_tasks_table(bar.tasks))
