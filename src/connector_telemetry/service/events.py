"""Telemetry events: the 29 kinds, validation of ingest batches, and the reads
(list with keyset cursors, latest, get)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import orjson

from connector_telemetry import clock
from connector_telemetry.errors import BadRequest, NotFound, check_text
from connector_telemetry.models import EventMeta, IngestResult, NewEvent
from connector_telemetry.numbers import wire
from connector_telemetry.service import body as body_rules
from connector_telemetry.service.body import NDJSON
from connector_telemetry.service.cursors import decode_cursor, encode_cursor, fingerprint
from connector_telemetry.store.base import Staged, Store

KINDS: tuple[str, ...] = (
    "Init",
    "Leave",
    "StartAttestation",
    "FinishAttestationSuccess",
    "FinishAttestationFailure",
    "StartRotateCryptKey",
    "FinishRotateCryptKeySuccess",
    "FinishRotateCryptKeyFailure",
    "StartRotatePki",
    "FinishRotatePkiSuccess",
    "FinishRotatePkiFailure",
    "StartUpgrade",
    "FinishUpgradeSuccess",
    "FinishUpgradeFailure",
    "BlessSlotSuccess",
    "BlessSlotPending",
    "BlessSlotFailure",
    "Reconcile",
    "ConfigureCloudflaredTunnel",
    "RekeyInstallBoth",
    "RekeyStart",
    "RekeyRestart",
    "RekeyAdvance",
    "RekeyComplete",
    "RekeyReset",
    "HaTransition",
    "HaError",
    "HaInit",
    "HaLeave",
)
_KIND_SET = frozenset(KINDS)
#: Payload fields a kind must carry (as strings); any other field is kept as sent.
REQUIRED_PAYLOAD: dict[str, tuple[str, ...]] = {
    "StartUpgrade": ("url",),
    **{k: ("tunnel_id",) for k in KINDS if k.startswith("Rekey")},
}
_EVENT_KEYS = frozenset(("e", "t", "n", "v"))
JSON = "application/json"
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000
LATEST_LIMIT_DEFAULT, LATEST_LIMIT_MAX = 10, 1000


def _bad(index: int, field: str, problem: str) -> BadRequest:
    return BadRequest(f"events[{index}].{field}: {problem}")


def _time(index: int, field: str, value: Any) -> float:
    kind = type(value)
    if kind is float or kind is int:
        if 0 <= value < math.inf:
            return float(value)
        raise _bad(index, field, f"must be a finite number >= 0, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(index, field, f"expected a number, got {orjson.dumps(value).decode()}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise _bad(index, field, f"must be a finite number >= 0, got {value!r}")
    return number


_INF = math.inf


def _plain_event(index: int, item: Any) -> NewEvent | None:
    """The common, valid event, checked with as little Python as possible; None sends
    anything unusual (or wrong) to ``check_event``, which says precisely what is wrong."""
    if type(item) is not dict or not item.keys() <= _EVENT_KEYS:
        return None
    e, t, n, v = item.get("e"), item.get("t", -1), item.get("n"), item.get("v")
    if type(e) is not dict or type(t) not in _NUMBER or not 0 <= t < _INF:
        return None
    kind = e.get("k")
    if type(kind) is not str or kind not in _KIND_SET or kind in REQUIRED_PAYLOAD:
        return None
    if n is not None and (type(n) not in _NUMBER or not 0 <= n < _INF):
        return None
    if v is not None and (type(v) is not str or "\x00" in v):
        return None
    return NewEvent(index, float(t), None if n is None else float(n), kind, e, v)


_NUMBER = frozenset((int, float))


def check_event(index: int, item: Any) -> NewEvent:
    fast = _plain_event(index, item)
    if fast is not None:
        return fast
    if not isinstance(item, dict):
        raise BadRequest(f"events[{index}]: expected an object {{e, t, n?, v?}}")
    for key in item:
        if key not in _EVENT_KEYS:
            raise _bad(index, key, "unknown field (allowed: e, t, n, v; a is set by the service)")
    e = item.get("e")
    if not isinstance(e, dict):
        raise _bad(index, "e", "required, an object {k, ...}")
    kind = e.get("k")
    if not isinstance(kind, str):
        raise _bad(index, "e.k", "required, a string naming the event kind")
    if kind not in _KIND_SET:
        raise _bad(index, "e.k", f"unknown event kind {kind!r}")
    for name in REQUIRED_PAYLOAD.get(kind, ()):
        if not isinstance(e.get(name), str):
            raise _bad(index, f"e.{name}", f"required for {kind}, a string")
    if "t" not in item:
        raise _bad(index, "t", "required, the time recorded (epoch seconds)")
    t = _time(index, "t", item["t"])
    n = None if item.get("n") is None else _time(index, "n", item["n"])
    v = item.get("v")
    if v is not None:
        if not isinstance(v, str):
            raise _bad(index, "v", f"expected a string, got {orjson.dumps(v).decode()}")
        check_text(f"events[{index}].v", v)
    return NewEvent(index, t, n, kind, e, v)


#: A payload value the fast path takes: flat, and an integer only within 64 bits, so that
#: what it accepts decodes the same in orjson (the precise path) and cannot nest too deep.
_Flat = str | Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | float | bool | None


class _WireEvent(msgspec.Struct, forbid_unknown_fields=True):
    e: dict[str, _Flat]
    t: float
    n: float | None = None
    v: str | None = None


_DECODE_BATCH = msgspec.json.Decoder(list[_WireEvent])
_ENCODE = msgspec.json.Encoder().encode


def _fast_batch(body: bytes, max_events: int) -> list[NewEvent] | None:
    """A JSON array of plain, valid events with flat payloads, decoded and type-checked in
    C (msgspec); None sends anything else to the precise checks, which name the index and
    field. Whatever it accepts, the precise checks accept too, and the same way."""
    try:
        items = _DECODE_BATCH.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    if not 0 < len(items) <= max_events:
        return None
    out = []
    required = REQUIRED_PAYLOAD
    pairs = 4 * len(items)  # e, t, n and v of every event (less those not given) ...
    for i, item in enumerate(items):
        e, t, n, v = item.e, item.t, item.n, item.v
        kind = e.get("k")
        if type(kind) is not str or kind not in _KIND_SET or not 0 <= t < _INF:
            return None
        if kind in required and any(type(e.get(f)) is not str for f in required[kind]):
            return None
        if n is None:
            pairs -= 1
        elif not 0 <= n < _INF:
            return None
        if v is None:
            pairs -= 1
        elif "\x00" in v:
            return None
        pairs += len(e)  # ... and every payload's
        out.append(NewEvent(i, t, n, kind, e, v))
    if not body_rules.unique_keys(body, pairs):
        # colons inside strings (a URL) or a repeated key: count those of the documents,
        # and only if that does not prove it either, look for the key
        body_rules.check_keys(body, JSON, "events", _colons(out))
    return out


def _colons(found: list[NewEvent]) -> int:
    """The colons of the batch re-encoded: each event's document ``{e, n, t, v}`` holds its
    pairs and the colons of its strings; one without ``n`` has none yet."""
    docs = [ev.doc for ev in found]
    if all(docs):
        return body_rules.colons(docs)  # type: ignore[arg-type]
    return sum(
        ev.doc.count(b":")
        if ev.doc is not None
        else _ENCODE(ev.e).count(b":") + 2 + (0 if ev.v is None else 1 + ev.v.count(":"))
        for ev in found
    )


def parse_batch(body: bytes, content_type: str, max_events: int) -> list[NewEvent]:
    """Parse a JSON array or NDJSON body into validated events, or raise with the
    index and field of the first bad one."""
    if content_type != NDJSON:
        fast = _fast_batch(body, max_events)
        if fast is not None:
            return fast
    return _precise_batch(body, content_type, max_events)


def _precise_batch(body: bytes, content_type: str, max_events: int) -> list[NewEvent]:
    """Any batch, checked in Python, naming the index and field of the first problem."""
    items = body_rules.read_items(body, content_type, max_events, "events")
    body_rules.check_items_keys(
        body, content_type, "events", body_rules.encode_all(items, "events")
    )
    return [check_event(i, item) for i, item in enumerate(items)]


def record_events(
    store: Store, account_id: str, connector_id: str, events: list[NewEvent]
) -> IngestResult:
    return store.record_events(account_id, connector_id, events, clock.now())


def record_events_staged(
    store: Store, account_id: str, connector_id: str, events: list[NewEvent]
) -> Staged[IngestResult]:
    """``record_events`` for the writer thread (``Store.record_events_staged``)."""
    return store.record_events_staged(account_id, connector_id, events, clock.now())


# -- reads ---------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    t_from: float
    t_to: float
    kind: str | None
    limit: int

    def fingerprint(self) -> bytes:
        return fingerprint(self.t_from, self.t_to, self.kind)


def list_events(
    store: Store, account_id: str, connector_id: str, query: ListQuery, cursor: str | None
) -> dict[str, Any]:
    rows = store.list_events(account_id, connector_id, *_list_args(query, cursor))
    return _event_list(query, rows)


async def list_events_async(
    store: Store, account_id: str, connector_id: str, query: ListQuery, cursor: str | None
) -> dict[str, Any]:
    """``list_events`` through the store's reads on the event loop (``Store.reads_on_loop``)."""
    rows = await store.list_events_async(account_id, connector_id, *_list_args(query, cursor))
    return _event_list(query, rows)


def _list_args(
    query: ListQuery, cursor: str | None
) -> tuple[float, float, str | None, tuple[float, float] | None, int]:
    after = None if cursor is None else decode_cursor(query.fingerprint(), cursor, 2)
    return (
        query.t_from,
        query.t_to,
        query.kind,
        (after[0], after[1]) if after else None,
        query.limit + 1,
    )


def _event_list(query: ListQuery, rows: list[EventMeta]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "count": min(len(rows), query.limit),
        "items": [  # (EventMeta.to_wire, without a call per item)
            {"a": wire(a), "k": k, "n": wire(n), "t": wire(t)} for a, k, n, t in rows[: query.limit]
        ],
    }
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        result["cursor"] = encode_cursor(query.fingerprint(), (last.t, last.n))
    return result


def latest_events(store: Store, account_id: str, connector_id: str, limit: int) -> bytes:
    """Latest Events' ``result``, assembled from stored documents without re-parsing."""
    return _latest(store.latest_events(account_id, connector_id, limit))


async def latest_events_async(
    store: Store, account_id: str, connector_id: str, limit: int
) -> bytes:
    return _latest(await store.latest_events_async(account_id, connector_id, limit))


def _latest(docs: list[bytes]) -> bytes:
    return b'{"count":%d,"items":[%s]}' % (len(docs), b",".join(docs))


def get_event(
    store: Store, account_id: str, connector_id: str, keys: list[tuple[float, float]]
) -> bytes:
    return _found(store.get_event(account_id, connector_id, keys), connector_id, keys)


async def get_event_async(
    store: Store, account_id: str, connector_id: str, keys: list[tuple[float, float]]
) -> bytes:
    doc = await store.get_event_async(account_id, connector_id, keys)
    return _found(doc, connector_id, keys)


def _found(doc: bytes | None, connector_id: str, keys: list[tuple[float, float]]) -> bytes:
    if doc is None:
        t, n = keys[0]
        raise NotFound(f"event {wire(t)}.{wire(n)} not found on connector {connector_id}")
    return doc
