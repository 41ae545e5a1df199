"""What the client commands print: on a terminal (or with ``--table``) a rich table; with
``--json`` one JSON document (the API's ``result``, pages of a list joined into one
array); with ``--ndjson`` one item a line. JSON output is exactly the API's items (the
envelope's ``result``, parsed from the response body, never the SDK's models, which add
``null`` fields and turn integers into floats)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connector_telemetry.cli.times import absolute, relative

#: Event kinds by family (a word in the kind), with the colour of the family.
FAMILIES = (
    (("Upgrade", "Slot", "Bless"), "upgrade", "cyan"),
    (("Rekey", "RotateCryptKey", "RotatePki", "Attestation", "Pki", "Key"), "keys", "magenta"),
    (("Init", "Leave", "Disconnect", "Reconcile", "Interrupt", "Reboot"), "lifecycle", "blue"),
)


def family(kind: str) -> tuple[str, str]:
    for words, name, colour in FAMILIES:
        if any(word in kind for word in words):
            return name, colour
    return "other", "white"


def is_failure(kind: str) -> bool:
    return "Fail" in kind or "Error" in kind


def console(stream: Any = None) -> Console:
    """Rich on ``stream``; not a terminal (a pipe, a file): no colours and no width limit
    below 200 columns, so ids are never folded."""
    stream = stream or sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, highlight=False, soft_wrap=False, width=None if tty else 200)


class Output:
    """One of ``table``, ``json``, ``ndjson``."""

    def __init__(self, mode: str, stream: Any = None) -> None:
        self.mode = mode
        self.stream = stream or sys.stdout

    def document(self, value: Any) -> None:
        self.stream.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")

    def line(self, value: Any) -> None:
        self.stream.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
        self.stream.flush()

    def items(self, kind: str, items: list[Any]) -> None:
        if self.mode == "json":
            self.document(items)
        elif self.mode == "ndjson":
            for item in items:
                self.line(item)
        else:
            console(self.stream).print(table(kind, items))

    def one(self, kind: str, item: Any) -> None:
        if self.mode == "json":
            self.document(item)
        elif self.mode == "ndjson":
            self.line(item)
        else:
            console(self.stream).print(record(item))


def when(t: Any) -> Text:
    if not isinstance(t, int | float):
        return Text("-")
    return Text.assemble((relative(t), "bold"), f" ({absolute(t)})")


def kind_text(kind: str) -> Text:
    _, colour = family(kind)
    if is_failure(kind):
        return Text("✗ " + kind, style="bold red")
    return Text(kind, style=colour)


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def event_id(item: Mapping[str, Any]) -> str:
    return f"{_number(item.get('t'))}.{_number(item.get('n'))}"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def row(kind: str, item: Mapping[str, Any]) -> list[Text | str]:
    """One table row of an item (a ``tail`` line is the same row)."""
    if kind == "event":
        e = item.get("e")
        body: Mapping[str, Any] = e if isinstance(e, Mapping) else {}
        name = str(item.get("k") or body.get("k") or "?")
        rest = {k: v for k, v in body.items() if k != "k"}
        details = " ".join(f"{k}={_compact(v)}" for k, v in rest.items())
        if "v" in item:
            details = (f"v={item['v']} " + details).strip()
        return [event_id(item), when(item.get("t")), kind_text(name), details]
    if kind == "snapshot":
        fields = {k: v for k, v in item.items() if k not in ("t", "a")}
        scalars = {k: v for k, v in fields.items() if not isinstance(v, list | dict)}
        details = " ".join(f"{k}={_compact(v)}" for k, v in list(scalars.items())[:6])
        failures = item.get("count_reclaim_failures")
        mark = Text("✗ reclaim failures", style="bold red") if failures else Text("")
        return [_number(item.get("t")), when(item.get("t")), mark, details]
    if kind == "connector":
        device = item.get("device") or {}
        window = (
            f"{item.get('interrupt_window_hour_of_day')}h+"
            f"{item.get('interrupt_window_duration_hours')}h "
            + _days(item.get("interrupt_window_days_of_week") or [])
        )
        active = Text("yes", "green") if item.get("activated") else Text("no", "yellow")
        return [
            str(item.get("id")),
            active,
            str(device.get("serial_number") or device.get("id") or "-"),
            str(item.get("timezone", "-")),
            window,
            str(item.get("last_heartbeat") or "-"),
            str(item.get("notes") or ""),
        ]
    # interrupt
    operation = next((k for k in ("reboot", "restart", "shutdown") if k in item), "?")
    purge = " (purge)" if (item.get(operation) or {}).get("purge") else ""
    return [
        operation + purge,
        str(item.get("submitted_at", "-")),
        str(item.get("triggered_at") or "pending"),
    ]


def _days(days: list[str]) -> str:
    return "daily" if len(days) == 7 else ",".join(d[:3] for d in days)


COLUMNS = {
    "event": ("ID", "RECORDED", "KIND", "DETAILS"),
    "snapshot": ("T", "RECORDED", "", "DETAILS"),
    "connector": ("ID", "ACTIVE", "DEVICE", "TIMEZONE", "WINDOW", "LAST HEARTBEAT", "NOTES"),
    "interrupt": ("OPERATION", "SUBMITTED", "TRIGGERED"),
}


def table(kind: str, items: Iterable[Mapping[str, Any]]) -> Table:
    grid = Table(box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(COLUMNS[kind]):
        grid.add_column(name, overflow="fold", no_wrap=i == 0 or name in ("RECORDED", "KIND"))
    for item in items:
        grid.add_row(*row(kind, item))
    return grid


def record(item: Mapping[str, Any]) -> Table:
    """One object as FIELD VALUE lines (times also relative and local)."""
    grid = Table(box=None, show_header=False, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in item.items():
        if key in ("t", "a") and isinstance(value, int | float):
            grid.add_row(key, Text.assemble(_number(value) + "  ", when(value)))
        elif key == "k" and isinstance(value, str):
            grid.add_row(key, kind_text(value))
        elif key == "e" and isinstance(value, Mapping):
            grid.add_row("e.k", kind_text(str(value.get("k", "?"))))
            for inner, v in value.items():
                if inner != "k":
                    grid.add_row(f"e.{inner}", _compact(v))
        else:
            grid.add_row(key, _compact(value))
    return grid
