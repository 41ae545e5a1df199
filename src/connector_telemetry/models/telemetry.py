"""What connectors report and are told: events and snapshots of an ingest batch, the
stored forms served back, interrupts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
import orjson

from connector_telemetry.numbers import wire


class NewEvent:
    """One validated event of an ingest batch; ``n`` is None until the store numbers it.

    ``doc`` (see ``event_doc``) is built at validation when ``n`` is known, so the
    single writer only builds it for events it numbers itself.
    """

    __slots__ = ("doc", "e", "index", "k", "n", "t", "v")

    def __init__(
        self, index: int, t: float, n: float | None, k: str, e: dict[str, Any], v: str | None
    ) -> None:
        self.index, self.t, self.n, self.k, self.e, self.v = index, t, n, k, e, v
        self.doc = None if n is None else event_doc(self, n)


class NewSnapshot:
    """One validated snapshot of an ingest batch, serialized as it will be served.
    ``summary``: its health record (``service.fleet``) when it is among the batch's two
    newest, which the store keeps on the connector's row if they are its newest."""

    __slots__ = ("doc", "index", "summary", "t", "v")

    def __init__(self, index: int, t: float, v: str, doc: bytes) -> None:
        self.index, self.t, self.v, self.doc = index, t, v, doc
        self.summary: bytes | None = None


@dataclass(frozen=True)
class Interrupt:
    id: int
    action: str
    purge: bool
    submitted_at: str
    triggered_at: str | None = None

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": str(self.id), "submitted_at": self.submitted_at}
        if self.triggered_at is not None:
            out["triggered_at"] = self.triggered_at
        out[self.action] = {"purge": self.purge}
        return out


class EventMeta(NamedTuple):
    """One item of List Events (a tuple: a 1000-item page makes 1000 of them, from rows
    in this order; a frozen dataclass cost ~1 us more each)."""

    a: float
    k: str
    n: float
    t: float

    def to_wire(self) -> dict[str, Any]:
        return {"a": wire(self.a), "k": self.k, "n": wire(self.n), "t": wire(self.t)}


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


#: msgspec's encoder: measured ~20x cheaper per small document than ``orjson.dumps`` here,
#: the same JSON (key order kept, UTF-8 unescaped, shortest float repr).
_encode = msgspec.json.Encoder().encode


def event_doc(event: NewEvent, n: float) -> bytes:
    """The stored, served form of an event: Get Event's ``result`` ``{e, n, t, v}``,
    with ``e`` exactly as sent. Built once at ingest so a read is one column copied
    into the envelope."""
    doc: dict[str, Any] = {"e": event.e, "n": wire(n), "t": wire(event.t)}
    if event.v is not None:
        doc["v"] = event.v
    return _encode(doc)


def same_content(stored: bytes, sent: bytes) -> bool:
    """Whether two event documents record the same event: byte-equal (the fast,
    common answer), or equal as JSON values (keys in another order, ``1`` and ``1.0``)."""
    return stored == sent or orjson.loads(stored) == orjson.loads(sent)


class FeedItem(NamedTuple):
    """One item of an account's feed (issue 10's streams), in arrival order: its ``seq``,
    its connector's id, ``kind`` (``event`` or ``snapshot``), the event's kind and the
    document exactly as Get Event / Get Snapshot return it."""

    seq: int
    connector_id: str
    kind: str
    #: The event's kind (None for a snapshot).
    k: str | None
    doc: bytes


class FeedFilter(NamedTuple):
    """What a stream follows: one connector (its pk) or the whole account (None), one
    ``kind`` or both (None), and for events one event kind ``k`` (None: every kind)."""

    cpk: int | None = None
    kind: str | None = None
    k: str | None = None
