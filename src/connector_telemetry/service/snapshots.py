"""Telemetry snapshots: validation against the 175-field Snapshot object (unknown
fields are kept), and the reads (list with keyset cursors on ``t``, latest, get)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from connector_telemetry import clock
from connector_telemetry.errors import BadRequest, NotFound, check_text
from connector_telemetry.models import IngestResult, NewSnapshot
from connector_telemetry.numbers import wire
from connector_telemetry.service import body as body_rules
from connector_telemetry.service import fleet
from connector_telemetry.service.cursors import decode_cursor, encode_cursor, fingerprint
from connector_telemetry.service.snapshot_schema import SCHEMA
from connector_telemetry.store.base import Store

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000
LATEST_LIMIT_DEFAULT, LATEST_LIMIT_MAX = 10, 1000
_JSON_NAMES = {"number": "a number", "string": "a string", "boolean": "a boolean"}


def _describe(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _check_object(obj: Any, model: str, where: str) -> None:
    if not isinstance(obj, dict):
        raise BadRequest(f"{where}: expected an object, got {_describe(obj)}")
    fields = SCHEMA[model]
    for name, (kind, required) in fields.items():
        if name not in obj or obj[name] is None:
            if required:
                raise BadRequest(f"{where}.{name}: required field is missing")
            continue
        value = obj[name]
        if isinstance(kind, tuple):
            if not isinstance(value, list):
                raise BadRequest(f"{where}.{name}: expected an array, got {_describe(value)}")
            for i, item in enumerate(value):
                _check_object(item, kind[1], f"{where}.{name}[{i}]")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f"{where}.{name}: expected a number, got {_describe(value)}")
            if not math.isfinite(value):
                raise BadRequest(f"{where}.{name}: must be a finite number")
        elif kind == "string":
            if not isinstance(value, str):
                raise BadRequest(f"{where}.{name}: expected a string, got {_describe(value)}")
        elif not isinstance(value, bool):
            raise BadRequest(
                f"{where}.{name}: expected {_JSON_NAMES[kind]}, got {_describe(value)}"
            )


def check_snapshot(index: int, item: Any) -> NewSnapshot:
    where = f"snapshots[{index}]"
    _check_object(item, "Snapshot", where)
    t = float(item["t"])
    if t < 0:
        raise BadRequest(f"{where}.t: must be a number >= 0, got {item['t']!r}")
    if "a" in item:
        raise BadRequest(f"{where}.a: set by the service (time collected); do not send it")
    check_text(f"{where}.v", item["v"])
    item["t"] = wire(t)
    return NewSnapshot(index, t, item["v"], body_rules.encode(item, where))


_TYPES: dict[str, Any] = {"number": float, "string": str, "boolean": bool}


def _struct(model: str) -> Any:
    """A msgspec type that accepts exactly what ``_check_object`` accepts for ``model``
    (or less): JSON numbers (not booleans) for numbers, strings, booleans, arrays of the
    nested objects; ``null`` or absent for optional fields; unknown fields ignored."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for name, (kind, required) in SCHEMA[model].items():
        typ = list[_struct(kind[1])] if isinstance(kind, tuple) else _TYPES[kind]  # type: ignore[misc]
        fields.append((name, typ) if required else (name, typ | None, None))
    return msgspec.defstruct(f"Checked{model}", fields, kw_only=True)


_BATCH: Any = list[_struct("Snapshot")]  # type: ignore[misc]


def _fast_batch(items: list[Any]) -> list[NewSnapshot] | None:
    """Type-check the whole batch in C (msgspec); None sends a batch that fails to the
    precise checks, which name the index and field."""
    try:
        msgspec.convert(items, _BATCH)
    except msgspec.ValidationError:
        return None
    out = []
    for i, item in enumerate(items):
        t = float(item["t"])
        if t < 0 or "a" in item or "\x00" in item["v"]:
            return None
        item["t"] = wire(t)
        out.append(NewSnapshot(i, t, item["v"], body_rules.encode(item, f"snapshots[{i}]")))
    return out


def parse_batch(body: bytes, content_type: str, max_items: int) -> list[NewSnapshot]:
    items = body_rules.read_items(body, content_type, max_items, "snapshots")
    fast = _fast_batch(items)
    if fast is not None:
        docs = [snap.doc for snap in fast]  # as stored: ``t`` rewritten, without colons
        body_rules.check_items_keys(body, content_type, "snapshots", docs)
        return fast
    encoded = body_rules.encode_all(items, "snapshots")
    body_rules.check_items_keys(body, content_type, "snapshots", encoded)
    return [check_snapshot(i, item) for i, item in enumerate(items)]


def record_snapshots(
    store: Store, account_id: str, connector_id: str, snapshots: list[NewSnapshot]
) -> IngestResult:
    fleet.mark_newest(snapshots)  # the fleet summary's health records (issue 9)
    return store.record_snapshots(account_id, connector_id, snapshots, clock.now())


@dataclass(frozen=True)
class ListQuery:
    t_from: float
    t_to: float
    limit: int

    def fingerprint(self) -> bytes:
        return fingerprint("snapshots", self.t_from, self.t_to)


def list_snapshots(
    store: Store, account_id: str, connector_id: str, query: ListQuery, cursor: str | None
) -> dict[str, Any]:
    after = None if cursor is None else decode_cursor(query.fingerprint(), cursor, 1)[0]
    rows = store.list_snapshots(
        account_id, connector_id, query.t_from, query.t_to, after, query.limit + 1
    )
    result: dict[str, Any] = {
        "count": min(len(rows), query.limit),
        "items": [{"a": wire(a), "t": wire(t)} for a, t in rows[: query.limit]],
    }
    if len(rows) > query.limit:
        result["cursor"] = encode_cursor(query.fingerprint(), (rows[query.limit - 1][1],))
    return result


def latest_snapshots(store: Store, account_id: str, connector_id: str, limit: int) -> bytes:
    docs = store.latest_snapshots(account_id, connector_id, limit)
    return b'{"count":%d,"items":[%s]}' % (len(docs), b",".join(docs))


def get_snapshot(store: Store, account_id: str, connector_id: str, t: float) -> bytes:
    doc = store.get_snapshot(account_id, connector_id, t)
    if doc is None:
        raise NotFound(f"snapshot {wire(t)} not found on connector {connector_id}")
    return doc
