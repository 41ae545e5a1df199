"""What both stores share that is not SQL: the connectors table's columns and how a row
maps to and from a ``Connector`` (both from the connector's table of fields,
models/connector.py), how an ingest batch is numbered and deduplicated before it is
inserted, and the conflicts with what is stored."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from connector_telemetry.errors import Conflict
from connector_telemetry.models import (
    Connector,
    NewEvent,
    NewSnapshot,
    event_doc,
    same_content,
)
from connector_telemetry.models.connector import table

#: An event as inserted: ``(t, n, k, doc)``.
EventRow = tuple[float, float, str, bytes]


def columns(model: type[Connector] = Connector) -> tuple[str, ...]:
    """The connectors table's columns, in the order of the model's fields (its table)."""
    return tuple(f.column for f in table(model).values())


CONNECTOR_COLUMNS = ", ".join(columns())


def changed_connector(
    row: tuple[Any, ...], change: Callable[[Connector], None]
) -> tuple[Connector, tuple[object, ...]]:
    """The connector read as ``row`` after ``change``, and the parameters of
    ``SQL.update_connector`` that write it back: every column but the key, then the key."""
    connector = connector_from_row(row)
    change(connector)
    values = connector_values(connector)
    return connector, (*values[2:], row[0], row[1])


def connector_from_row(row: tuple[Any, ...], model: type[Connector] = Connector) -> Connector:
    fields = table(model)
    return model(
        **{
            name: f.codec.from_column(raw)
            for (name, f), raw in zip(fields.items(), row, strict=True)
        }
    )


def connector_values(c: Connector) -> tuple[object, ...]:
    """The row for ``columns()``, in that order."""
    return tuple(f.codec.to_column(getattr(c, name)) for name, f in table(type(c)).items())


def unnumbered_times(events: list[NewEvent]) -> list[float]:
    """The ``t`` of every event sent without ``n``: the store looks up the largest ``n``
    stored at each (inside the write transaction)."""
    return list({ev.t for ev in events if ev.n is None})


def ready_rows(events: list[NewEvent]) -> list[EventRow] | None:
    """``(t, n, k, doc)`` of a batch that needs nothing from the store (the common case:
    every event numbered, no two with the same key), so the rows can be built before the
    write lock is taken; None for any other batch."""
    if all(ev.doc is not None for ev in events):
        numbered = [(ev.t, ev.n, ev.k, ev.doc) for ev in events]
        if len({(row[0], row[1]) for row in numbered}) == len(numbered):
            return numbered  # type: ignore[return-value]
    return None


def newest_version(items: list[NewEvent] | list[NewSnapshot]) -> tuple[float, str] | None:
    """``(t, v)`` of the newest item that carries a version: the connector's
    ``last_seen_version``, unless telemetry recorded later was already seen."""
    versioned = [(item.t, item.v) for item in items if item.v is not None]
    return max(versioned) if versioned else None


def number_events(events: list[NewEvent], stored_max: Mapping[float, float]) -> list[EventRow]:
    """``(t, n, k, doc)`` to insert: events without ``n`` get the next free number at their
    ``t`` (above what is stored and what the batch sends); in-batch repeats of the same
    content are dropped, repeats with other content refused (409)."""
    ready = ready_rows(events)
    if ready is not None:
        return ready
    taken: dict[float, float] = {}
    for ev in events:
        if ev.n is not None:
            taken[ev.t] = max(taken.get(ev.t, -math.inf), ev.n)
    next_free: dict[float, float] = {}
    rows = []
    seen: dict[tuple[float, float], tuple[int, bytes]] = {}
    for ev in events:
        n = ev.n
        if n is None:
            if ev.t not in next_free:
                top = max(taken.get(ev.t, -math.inf), stored_max.get(ev.t, -math.inf))
                next_free[ev.t] = 0.0 if top == -math.inf else float(math.floor(top) + 1)
            n = next_free[ev.t]
            next_free[ev.t] = n + 1
        doc = ev.doc if ev.doc is not None else event_doc(ev, n)
        earlier = seen.get((ev.t, n))
        if earlier is not None:
            if not same_content(earlier[1], doc):
                raise Conflict(
                    f"events[{ev.index}]: same t and n as events[{earlier[0]}] "
                    "with different content"
                )
            continue
        seen[(ev.t, n)] = (ev.index, doc)
        rows.append((ev.t, n, ev.k, doc))
    return rows


def dedupe_snapshots(snapshots: list[NewSnapshot]) -> list[NewSnapshot]:
    """The batch without in-batch repeats of the same content (409 for other content)."""
    seen: dict[float, NewSnapshot] = {}
    for snap in snapshots:
        earlier = seen.get(snap.t)
        if earlier is None:
            seen[snap.t] = snap
        elif not same_content(earlier.doc, snap.doc):
            raise Conflict(
                f"snapshots[{snap.index}]: same t as snapshots[{earlier.index}] "
                "with different content"
            )
    return list(seen.values())


def stored_event_conflict(index: object, t: float, n: float) -> Conflict:
    """409 for an event whose key is already stored with other content (``index`` is
    the event's place in the batch, ``?`` when it was numbered by the store)."""
    return Conflict(
        f"events[{index}]: an event with t={t:g} and n={n:g} is already "
        "stored with different content"
    )


def stored_snapshot_conflict(index: int, t: float) -> Conflict:
    return Conflict(
        f"snapshots[{index}]: a snapshot with t={t:g} is already stored with different content"
    )


def pending_interrupt_conflict(connector_id: str) -> Conflict:
    return Conflict(
        f"connector {connector_id} already has a pending interrupt; it must be "
        "picked up before another is submitted"
    )


class ConnectorPks:
    """(account id, connector id) -> the connector's pk, cached for reads. A pk is never
    reused (see the schemas), so a stale entry can only point at a deleted connector's
    empty telemetry, never at another connector's: after an empty answer, ``recheck``."""

    def __init__(self, lookup: Callable[[str, str], int], size: int = 100_000) -> None:
        self._lookup = lookup
        self._size = size
        self._pks: dict[tuple[str, str], int] = {}

    def get(self, account_id: str, connector_id: str) -> int:
        pk = self._pks.get((account_id, connector_id))
        if pk is None:
            pk = self._lookup(account_id, connector_id)  # NotFound when there is none
            self.remember(account_id, connector_id, pk)
        return pk

    def cached(self, account_id: str, connector_id: str) -> int | None:
        """The entry, if any, without looking it up (a guess to verify)."""
        return self._pks.get((account_id, connector_id))

    def remember(self, account_id: str, connector_id: str, pk: int) -> None:
        """Keep a pk just read (e.g. inside a write transaction)."""
        if len(self._pks) >= self._size:
            self._pks.clear()
        self._pks[account_id, connector_id] = pk

    def recheck(self, account_id: str, connector_id: str) -> None:
        """Forget the entry and look again: NotFound if the connector is gone."""
        self._pks.pop((account_id, connector_id), None)
        self.get(account_id, connector_id)
