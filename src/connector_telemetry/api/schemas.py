"""The component schemas of the OpenAPI document (``#/components/schemas``): the
connector's (from its table of fields), events', snapshots' (from the Snapshot object's
table, service/snapshot_schema.py), interrupts', token verification's, and the error
envelope's. Routes refer to them with ``route.ref(name)``."""

from __future__ import annotations

from typing import Any

from connector_telemetry.models import Connector
from connector_telemetry.models.connector import settable, table
from connector_telemetry.service.connectors import DEVICE_ID_MAX
from connector_telemetry.service.events import KINDS
from connector_telemetry.service.snapshot_schema import SCHEMA

_NUM = {"type": "number"}
_STR = {"type": "string"}
ERROR_ITEM = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer", "minimum": 1000}, "message": _STR},
}


def connector_schemas(model: type[Connector] = Connector) -> dict[str, Any]:
    """Connector, ConnectorCreate and ConnectorUpdate, from the connector's table of
    fields (``model``: a table with more fields, in tests)."""
    fields = table(model)
    settable_ = {name: fields[name].schema for name in settable(model)}
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in fields.values():
        if f.wire is None:
            continue
        name, _, inner = f.wire.partition(".")
        into, needed = props, required
        if inner:  # a member of a nested object (``device.id``)
            nested = props.setdefault(name, {"type": "object", "required": [], "properties": {}})
            if not f.optional and name not in required:
                required.append(name)
            into, needed, name = nested["properties"], nested["required"], inner
        into[name] = f.schema
        if not f.optional:
            needed.append(name)
    props["license_key"] = {
        "type": "string",
        "description": "Only in the response that provisioned it; shown once.",
    }
    device_id = {"type": "string", "minLength": 1, "maxLength": DEVICE_ID_MAX}
    return {
        "Connector": {"type": "object", "required": required, "properties": props},
        "ConnectorCreate": {
            "type": "object",
            "required": ["device"],
            "additionalProperties": False,
            "properties": {
                "device": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "id": device_id,
                        "serial_number": device_id,
                        "provision_license": {"type": "boolean", "enum": [True]},
                    },
                },
                **settable_,
            },
        },
        "ConnectorUpdate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {**settable_, "provision_license": {"type": "boolean"}},
        },
    }


def _page(item: str | dict[str, Any], *, cursor: bool) -> dict[str, Any]:
    """A telemetry list's ``result``: ``{count, items, cursor?}``."""
    items: dict[str, Any] = (
        {"$ref": f"#/components/schemas/{item}"}
        if isinstance(item, str)
        else {"type": "object", "required": sorted(item), "properties": item}
    )
    props: dict[str, Any] = {"count": _NUM, "items": {"type": "array", "items": items}}
    if cursor:
        props["cursor"] = _STR
    return {"type": "object", "required": ["count", "items"], "properties": props}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["result", "success", "errors", "messages"],
        "properties": {
            "result": {"nullable": True},
            "success": {"type": "boolean", "enum": [False]},
            "errors": {"type": "array", "minItems": 1, "items": ERROR_ITEM},
            "messages": {"type": "array", "items": ERROR_ITEM},
        },
    },
    **connector_schemas(),
    "EventPayload": {
        "type": "object",
        "required": ["k"],
        "additionalProperties": True,
        "properties": {
            "k": {"type": "string", "enum": list(KINDS)},
            "url": _STR,
            "tunnel_id": _STR,
        },
    },
    "RecordedEvent": {
        "type": "object",
        "required": ["e", "n", "t"],
        "properties": {
            "e": {"$ref": "#/components/schemas/EventPayload"},
            "n": _NUM,
            "t": _NUM,
            "v": _STR,
        },
    },
    "NewEvent": {
        "type": "object",
        "required": ["e", "t"],
        "additionalProperties": False,
        "properties": {
            "e": {"$ref": "#/components/schemas/EventPayload"},
            "t": {"type": "number", "minimum": 0},
            "n": {"type": "number", "minimum": 0},
            "v": _STR,
        },
    },
    "EventList": _page({"a": _NUM, "k": _STR, "n": _NUM, "t": _NUM}, cursor=True),
    "EventLatest": _page("RecordedEvent", cursor=False),
    "IngestResult": {
        "type": "object",
        "required": ["accepted", "duplicates"],
        "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"}},
    },
    "TokenVerify": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": _STR,
            "status": {"type": "string", "enum": ["active"]},
            "expires_on": {"type": "string", "format": "date-time"},
        },
    },
}


def _snapshot_schemas() -> dict[str, Any]:
    """OpenAPI schemas for the Snapshot object and its nested items (§4.10.1)."""
    out: dict[str, Any] = {}
    for model, fields in SCHEMA.items():
        props: dict[str, Any] = {}
        for name, (kind, _) in fields.items():
            if isinstance(kind, tuple):
                ref = "Snapshot" + kind[1] if kind[1] != "Snapshot" else "Snapshot"
                props[name] = {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}
            else:
                props[name] = {"type": kind}
        required = [name for name, (_, req) in fields.items() if req]
        key = "Snapshot" if model == "Snapshot" else "Snapshot" + model
        out[key] = {
            "type": "object",
            "required": required,
            "properties": props,
            "additionalProperties": True,
        }
    return out


_ACTION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"purge": {"type": "boolean", "default": False}},
}
SCHEMAS.update(_snapshot_schemas())
SCHEMAS.update(
    {
        "SnapshotList": _page({"a": _NUM, "t": _NUM}, cursor=True),
        "SnapshotLatest": _page("Snapshot", cursor=False),
        "InterruptCreate": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {"reboot": _ACTION, "restart": _ACTION, "shutdown": _ACTION},
        },
        "Interrupt": {
            "type": "object",
            "required": ["id", "submitted_at"],
            "properties": {
                "id": _STR,
                "submitted_at": {"type": "string", "format": "date-time"},
                "triggered_at": {"type": "string", "format": "date-time"},
                "reboot": _ACTION,
                "restart": _ACTION,
                "shutdown": _ACTION,
            },
        },
    }
)
