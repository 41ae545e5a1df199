"""Snapshot series (ours, for the dashboard's charts): what a range of snapshots says about
CPU, load, memory, mounts, interfaces, tunnels and temperatures, as columns of numbers.

A week of one-minute snapshots is ~10,000 documents of ~10 KB; a browser fetching each
with Get Snapshot would make 10,000 requests and parse 100 MB. Here each document is
decoded once, in C, reading only the fields charted (``service.readings``), and counters
become rates with the reset rule of ``readings.increase``. A value a snapshot does not
carry is ``null``; a rate needs the snapshot before it, so the first point's is ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connector_telemetry.numbers import wire
from connector_telemetry.service import readings
from connector_telemetry.service.cursors import decode_cursor, encode_cursor, fingerprint
from connector_telemetry.service.readings import Reading
from connector_telemetry.store.base import Store

LIMIT_DEFAULT, LIMIT_MAX = 20_000, 20_000
_PAGE = 1000


@dataclass(frozen=True)
class SeriesQuery:
    t_from: float
    t_to: float
    limit: int

    def fingerprint(self) -> bytes:
        return fingerprint("series", self.t_from, self.t_to)


class _Named:
    """Columns keyed by a device-given name (a mount, an interface), in order of first
    appearance, padded with ``null`` where a snapshot lacks the name."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.found: dict[str, dict[str, list[Any]]] = {}

    def put(self, index: int, name: str, values: tuple[Any, ...]) -> None:
        series = self.found.get(name)
        if series is None:
            series = self.found[name] = {c: [None] * index for c in self.columns}
        for column, value in zip(self.columns, values, strict=True):
            column_values = series[column]
            column_values.extend([None] * (index - len(column_values)))
            column_values.append(value)

    def out(self, count: int, key: str) -> list[dict[str, Any]]:
        items = []
        for name, series in self.found.items():
            for values in series.values():
                values.extend([None] * (count - len(values)))
            items.append({key: name, **series})
        return items


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _rate(old: float | None, new: float | None, seconds: float) -> float | None:
    if old is None or new is None or seconds <= 0:
        return None
    return round(readings.increase(old, new) / seconds, 3)


class _Builder:
    def __init__(self) -> None:
        self.t: list[float] = []
        self.cpu: list[float | None] = []
        self.load = {"1m": [], "5m": [], "15m": []}  # type: dict[str, list[float | None]]
        self.memory: list[float | None] = []
        self.tunnels = {"up": [], "degraded": [], "total": []}  # type: dict[str, list[int | None]]
        self.mounts = _Named(("used",))
        self.interfaces = _Named(("rx", "tx"))
        self.thermals = _Named(("celsius",))

    def add(self, r: Reading, before: Reading | None) -> None:
        i = len(self.t)
        self.t.append(r.t)
        old_cpu = None if before is None else readings.cpu_counters(before)
        self.cpu.append(_round(readings.cpu_use(old_cpu, readings.cpu_counters(r))))
        self.load["1m"].append(r.load_average_1m)
        self.load["5m"].append(r.load_average_5m)
        self.load["15m"].append(r.load_average_15m)
        self.memory.append(_round(readings.memory_used(r)))
        counts = readings.tunnel_counts(r)
        for key in ("up", "degraded", "total"):
            self.tunnels[key].append(None if counts is None else counts[key])
        for m in r.mounts or ():
            if not m.is_read_only:
                self.mounts.put(i, m.mount_point, (_round(readings.mount_used(m)),))
        seconds = 0.0 if before is None else r.t - before.t
        previous = {d.name: d for d in (before.netdevs or ())} if before is not None else {}
        for d in r.netdevs or ():
            old = previous.get(d.name)
            rx = None if old is None else _rate(old.recv_bytes, d.recv_bytes, seconds)
            tx = None if old is None else _rate(old.sent_bytes, d.sent_bytes, seconds)
            self.interfaces.put(i, d.name, (rx, tx))
        for th in r.thermals or ():
            self.thermals.put(i, th.label, (th.current_celcius,))

    def result(self) -> dict[str, Any]:
        count = len(self.t)
        return {
            "count": count,
            "t": [wire(t) for t in self.t],
            "cpu": self.cpu,
            "load": self.load,
            "memory": self.memory,
            "tunnels": self.tunnels,
            "mounts": self.mounts.out(count, "name"),
            "interfaces": self.interfaces.out(count, "name"),
            "thermals": self.thermals.out(count, "label"),
        }


def _documents(
    store: Store, account_id: str, connector_id: str, after: float, t_to: float
) -> Iterator[tuple[float, bytes]]:
    """``(t, doc)`` of the snapshots after ``after`` up to ``t_to``, oldest first."""
    while True:
        rows = store.export_snapshots(account_id, connector_id, after, _PAGE)
        for t, _, doc in rows:
            if t > t_to:
                return
            yield t, doc
        if len(rows) < _PAGE:
            return
        after = rows[-1][0]


def snapshot_series(
    store: Store, account_id: str, connector_id: str, query: SeriesQuery, cursor: str | None
) -> dict[str, Any]:
    """Up to ``query.limit`` snapshots from ``from`` to ``to`` (inclusive) as columns;
    ``cursor`` (bound to ``from`` and ``to``) continues after the last one, whose reading
    is read again as the baseline of the next page's rates."""
    baseline_t = None
    if cursor is not None:
        (baseline_t,) = decode_cursor(query.fingerprint(), cursor, 1)
    start = query.t_from if baseline_t is None else baseline_t
    builder = _Builder()
    before: Reading | None = None
    more = False
    for t, doc in _documents(
        store, account_id, connector_id, math.nextafter(start, -math.inf), query.t_to
    ):
        r = readings.read(doc)
        if baseline_t is not None and t <= baseline_t:
            before = r
            continue
        if len(builder.t) == query.limit:
            more = True
            break
        builder.add(r, before)
        before = r
    result = builder.result()
    if more:
        result["cursor"] = encode_cursor(query.fingerprint(), (builder.t[-1],))
    return result
