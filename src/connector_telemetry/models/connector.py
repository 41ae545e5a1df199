"""A Magic WAN Connector, and the one table of its fields.

The dataclass's fields are that table: each field's metadata (``Field``) says its column,
its name on the wire, its JSON schema, how a create, PUT or PATCH body sets it (``check``,
for the settable ones), whether an export carries it, and how its value is stored, sent
and exported (``Codec``). From it come the wire form (``Connector.to_wire``), the row
mapping (store/rows.py), the validation of request bodies (service/connectors.py), export
and import (service/transfer.py) and the OpenAPI schemas (api/schemas.py).

Adding a field is one entry below and one migration adding its column
(``store/migrations/NNNN_name.sql``, the same words for both stores), e.g.::

    site: Annotated[str, Field("site", "site", {"type": "string"}, _check_site)] = ""
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Annotated, Any, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from connector_telemetry.errors import BadRequest, check_text
from connector_telemetry.numbers import wire

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
DEVICE_TYPES = ("MANAGED", "LICENSED")
NOTES_MAX = 4096
EMBARGO_MAX = 100
#: ``interrupt_window_duration_hours`` in [1, 24]; ``interrupt_window_hour_of_day`` in [0, 24).
DURATION_MIN, DURATION_MAX = 1, 24
HOUR_MIN, HOUR_END = 0, 24
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Codec:
    """How a field's value is stored (``to_column``/``from_column``), written on the wire
    (``to_wire``) and in an export (``to_export``/``from_export``)."""

    to_column: Callable[[Any], Any] = _same
    from_column: Callable[[Any], Any] = _same
    to_wire: Callable[[Any], Any] = _same
    to_export: Callable[[Any], Any] = _same
    from_export: Callable[[Any], Any] = _same


PLAIN = Codec()
FLAG = Codec(from_column=bool)
NUMBER = Codec(from_column=float, to_wire=wire)
JSON = Codec(to_column=lambda v: orjson.dumps(v).decode(), from_column=orjson.loads)
DIGEST = Codec(
    from_column=lambda v: None if v is None else bytes(v),
    to_export=lambda v: v.hex() if v else None,
    from_export=lambda v: bytes.fromhex(v) if v else None,
)


@dataclass(frozen=True)
class Field:
    """One row of the connector's table of fields (see the module's doc)."""

    #: Its column in the ``connectors`` table.
    column: str
    #: Its name in the API's Connector object (``device.id``: inside ``device``); None
    #: for a field never sent.
    wire: str | None
    #: The JSON schema of its wire value (OpenAPI), its limits from the constants
    #: ``check`` enforces.
    schema: dict[str, Any] | None = None
    #: For a field a create, PUT or PATCH body sets: validates the body's value (named
    #: ``name``) and returns the value to keep, or raises ``BadRequest``.
    check: Callable[[str, Any], Any] | None = None
    #: Left out of the wire form while None (else always there, so required in OpenAPI).
    optional: bool = False
    #: Part of the connector's key (``account_id``, ``id``): exported as the record's own.
    key: bool = False
    codec: Codec = PLAIN


# -- the checks of the settable fields ---------------------------------------------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name}: expected a number, got {value!r}")
    return float(value)


def _check_activated(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{name}: expected a boolean, got {value!r}")
    return value


def _check_days(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise BadRequest(f"{name}: expected an array of day names")
    for i, day in enumerate(value):
        if day not in DAYS:
            raise BadRequest(f"{name}[{i}]: {day!r} is not one of {', '.join(DAYS)}")
    if len(set(value)) != len(value):
        raise BadRequest(f"{name}: a day is listed twice")
    return list(value)


def _check_duration(name: str, value: Any) -> float:
    hours = _number(name, value)
    if not DURATION_MIN <= hours <= DURATION_MAX:
        raise BadRequest(
            f"{name}: must be between {DURATION_MIN} and {DURATION_MAX}, got {value!r}"
        )
    return hours


def _check_hour(name: str, value: Any) -> float:
    hour = _number(name, value)
    if not HOUR_MIN <= hour < HOUR_END:
        raise BadRequest(
            f"{name}: must be at least {HOUR_MIN} and less than {HOUR_END}, got {value!r}"
        )
    return hour


def _check_embargo(name: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest(f"{name}: expected an array of YYYY-MM-DD dates")
    if len(value) > EMBARGO_MAX:
        raise BadRequest(f"{name}: at most {EMBARGO_MAX} dates, got {len(value)}")
    for i, day in enumerate(value):
        if not isinstance(day, str) or not _DATE.match(day):
            raise BadRequest(f"{name}[{i}]: expected a YYYY-MM-DD date, got {day!r}")
        try:
            date.fromisoformat(day)
        except ValueError as exc:
            raise BadRequest(f"{name}[{i}]: {day!r} is not a calendar date") from exc
    return list(value)


def _check_notes(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string, got {value!r}")
    if len(value) > NOTES_MAX:
        raise BadRequest(f"{name}: at most {NOTES_MAX} characters")
    return check_text(name, value)


def _check_timezone(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}: expected an IANA time zone name, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"{name}: unknown IANA time zone {value!r}") from exc
    return value


# -- the table ---------------------------------------------------------------------------

_STRING: dict[str, Any] = {"type": "string"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_DAYS = {"type": "array", "items": {"type": "string", "enum": list(DAYS)}, "uniqueItems": True}
_DURATION = {"type": "number", "minimum": DURATION_MIN, "maximum": DURATION_MAX}
_EMBARGO = {
    "type": "array",
    "maxItems": EMBARGO_MAX,
    "items": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
}
_HOUR = {"type": "number", "minimum": HOUR_MIN, "maximum": HOUR_END, "exclusiveMaximum": True}
_NOTES = {"type": "string", "maxLength": NOTES_MAX}
_TIMEZONE = {"type": "string", "example": "Europe/Lisbon"}
_DEVICE_TYPE = {"type": "string", "enum": list(DEVICE_TYPES)}


@dataclass
class Connector:
    """A connector. Its fields, in the order of the wire form, are the table: each
    one's ``Field`` is in its annotation (``table()`` reads them)."""

    account_id: Annotated[str, Field("account_id", None, key=True)]
    id: Annotated[str, Field("id", "id", _STRING, key=True)]
    activated: Annotated[
        bool, Field("activated", "activated", {"type": "boolean"}, _check_activated, codec=FLAG)
    ] = False
    interrupt_window_days_of_week: Annotated[
        list[str],
        Field("days_of_week", "interrupt_window_days_of_week", _DAYS, _check_days, codec=JSON),
    ] = field(default_factory=lambda: list(DAYS))
    interrupt_window_duration_hours: Annotated[
        float,
        Field(
            "duration_hours",
            "interrupt_window_duration_hours",
            _DURATION,
            _check_duration,
            codec=NUMBER,
        ),
    ] = 4.0
    interrupt_window_embargo_dates: Annotated[
        list[str],
        Field(
            "embargo_dates", "interrupt_window_embargo_dates", _EMBARGO, _check_embargo, codec=JSON
        ),
    ] = field(default_factory=list)
    interrupt_window_hour_of_day: Annotated[
        float,
        Field("hour_of_day", "interrupt_window_hour_of_day", _HOUR, _check_hour, codec=NUMBER),
    ] = 0.0
    last_updated: Annotated[str, Field("last_updated", "last_updated", _TIME)] = ""
    notes: Annotated[str, Field("notes", "notes", _NOTES, _check_notes)] = ""
    timezone: Annotated[str, Field("timezone", "timezone", _TIMEZONE, _check_timezone)] = "UTC"
    device_id: Annotated[str, Field("device_id", "device.id", _STRING)] = ""
    device_type: Annotated[str, Field("device_type", "device.type", _DEVICE_TYPE)] = "MANAGED"
    device_serial: Annotated[
        str | None, Field("device_serial", "device.serial_number", _STRING, optional=True)
    ] = None
    last_heartbeat: Annotated[
        str | None, Field("last_heartbeat", "last_heartbeat", _TIME, optional=True)
    ] = None
    last_seen_version: Annotated[
        str | None, Field("last_seen_version", "last_seen_version", _STRING, optional=True)
    ] = None
    license_key_hash: Annotated[bytes | None, Field("license_key_hash", None, codec=DIGEST)] = None

    def to_wire(self, license_key: str | None = None) -> dict[str, Any]:
        """The API's Connector object; ``license_key`` only in the answer that issued it."""
        out: dict[str, Any] = {}
        for name, f in table(type(self)).items():
            value = getattr(self, name)
            if f.wire is None or (value is None and f.optional):
                continue
            head, _, inner = f.wire.partition(".")
            if inner:
                out.setdefault(head, {})[inner] = f.codec.to_wire(value)
            else:
                out[head] = f.codec.to_wire(value)
        if license_key is not None:
            out["license_key"] = license_key
        return out


_TABLES: dict[type[Connector], dict[str, Field]] = {}


def table(model: type[Connector] = Connector) -> dict[str, Field]:
    """The model's fields by name, in order (``model``: a table with more fields, in tests)."""
    found = _TABLES.get(model)
    if found is None:
        hints = get_type_hints(model, include_extras=True)
        found = _TABLES[model] = {f.name: hints[f.name].__metadata__[0] for f in fields(model)}
    return found


def settable(model: type[Connector] = Connector) -> tuple[str, ...]:
    """The fields a create, PUT or PATCH body may set, in order."""
    return tuple(name for name, f in table(model).items() if f.check is not None)


def check_settable(body: dict[str, Any], model: type[Connector] = Connector) -> dict[str, Any]:
    """The settable fields of a request body, each checked (``BadRequest`` names the first
    wrong one) and in the form to keep; other keys are left to the caller."""
    checked = {}
    for name, value in body.items():
        check = table(model)[name].check if name in settable(model) else None
        if check is not None:
            checked[name] = check(name, value)
    return checked
