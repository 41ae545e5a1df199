"""The OpenAPI document at ``{prefix}/openapi.json``: built from the route table,
so a route cannot exist without being described. Public, as Cloudflare's is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from connector_telemetry import __version__
from connector_telemetry.api import dashboard
from connector_telemetry.api.request import Request
from connector_telemetry.api.routing import Route
from connector_telemetry.service.events import KINDS
from connector_telemetry.service.models import DAYS
from connector_telemetry.service.snapshot_schema import SCHEMA

_NUM = {"type": "number"}
_STR = {"type": "string"}
_ERR_ITEM = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer", "minimum": 1000}, "message": _STR},
}
_SETTABLE: dict[str, Any] = {
    "activated": {"type": "boolean"},
    "interrupt_window_days_of_week": {
        "type": "array",
        "items": {"type": "string", "enum": list(DAYS)},
        "uniqueItems": True,
    },
    "interrupt_window_duration_hours": {"type": "number", "minimum": 1, "maximum": 24},
    "interrupt_window_embargo_dates": {
        "type": "array",
        "maxItems": 100,
        "items": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    },
    "interrupt_window_hour_of_day": {
        "type": "number",
        "minimum": 0,
        "maximum": 24,
        "exclusiveMaximum": True,
    },
    "notes": {"type": "string", "maxLength": 4096},
    "timezone": {"type": "string", "example": "Europe/Lisbon"},
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
            "errors": {"type": "array", "minItems": 1, "items": _ERR_ITEM},
            "messages": {"type": "array", "items": _ERR_ITEM},
        },
    },
    "Connector": {
        "type": "object",
        "required": [
            "id",
            "activated",
            "interrupt_window_days_of_week",
            "interrupt_window_duration_hours",
            "interrupt_window_embargo_dates",
            "interrupt_window_hour_of_day",
            "last_updated",
            "notes",
            "timezone",
        ],
        "properties": {
            "id": _STR,
            **_SETTABLE,
            "last_updated": {"type": "string", "format": "date-time"},
            "device": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": _STR,
                    "serial_number": _STR,
                    "type": {"type": "string", "enum": ["MANAGED", "LICENSED"]},
                },
            },
            "last_heartbeat": {"type": "string", "format": "date-time"},
            "last_seen_version": _STR,
            "license_key": {
                "type": "string",
                "description": "Only in the response that provisioned it; shown once.",
            },
        },
    },
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
                    "id": {"type": "string", "minLength": 1, "maxLength": 128},
                    "serial_number": {"type": "string", "minLength": 1, "maxLength": 128},
                    "provision_license": {"type": "boolean", "enum": [True]},
                },
            },
            **_SETTABLE,
        },
    },
    "ConnectorUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {**_SETTABLE, "provision_license": {"type": "boolean"}},
    },
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

_RESULTS: dict[str, Any] = {
    "connectors.list": {"type": "array", "items": {"$ref": "#/components/schemas/Connector"}},
    "events.record": {"$ref": "#/components/schemas/IngestResult"},
    "events.list": {"$ref": "#/components/schemas/EventList"},
    "events.latest.list": {"$ref": "#/components/schemas/EventLatest"},
    "events.get": {"$ref": "#/components/schemas/RecordedEvent"},
    "user.tokens.verify": {"$ref": "#/components/schemas/TokenVerify"},
    "snapshots.record": {"$ref": "#/components/schemas/IngestResult"},
    "snapshots.list": {"$ref": "#/components/schemas/SnapshotList"},
    "snapshots.latest.list": {"$ref": "#/components/schemas/SnapshotLatest"},
    "snapshots.get": {"$ref": "#/components/schemas/Snapshot"},
    "interrupts.create": {"$ref": "#/components/schemas/Interrupt"},
    "interrupts.list": {"type": "array", "items": {"$ref": "#/components/schemas/Interrupt"}},
    "accounts.tokens.verify": {"$ref": "#/components/schemas/TokenVerify"},
}
_BODIES: dict[str, Any] = {
    "connectors.create": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ConnectorCreate"}}
    },
    "connectors.update": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ConnectorUpdate"}}
    },
    "connectors.edit": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ConnectorUpdate"}}
    },
    "events.record": {
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "items": {"$ref": "#/components/schemas/NewEvent"},
            }
        },
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
    "snapshots.record": {
        "application/json": {
            "schema": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10000,
                "items": {"$ref": "#/components/schemas/Snapshot"},
            }
        },
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
    "interrupts.create": {
        "application/json": {"schema": {"$ref": "#/components/schemas/InterruptCreate"}}
    },
}
_QUERIES: dict[str, list[tuple[str, bool, dict[str, Any]]]] = {
    "connectors.list": [
        ("device_type", False, {"type": "string", "enum": ["MANAGED", "LICENSED"]})
    ],
    "events.list": [
        ("from", True, _NUM),
        ("to", True, _NUM),
        ("cursor", False, _STR),
        ("k", False, {"type": "string", "enum": list(KINDS)}),
        ("limit", False, {"type": "integer", "minimum": 1, "maximum": 1000}),
    ],
    "events.latest.list": [("limit", False, {"type": "integer", "minimum": 1, "maximum": 1000})],
    "snapshots.list": [
        ("from", True, _NUM),
        ("to", True, _NUM),
        ("cursor", False, _STR),
        ("limit", False, {"type": "integer", "minimum": 1, "maximum": 1000}),
    ],
    "snapshots.latest.list": [("limit", False, {"type": "integer", "minimum": 1, "maximum": 1000})],
}
_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "account_id": {"type": "string", "maxLength": 32, "minLength": 1},
    "connector_id": {"type": "string", "minLength": 1, "maxLength": 128},
    "event_t": _NUM,
    "event_n": _NUM,
    "snapshot_t": _NUM,
}
_ERRORS = {
    "400": "Bad request: malformed input, missing or malformed credentials",
    "401": "Invalid API token (token verify)",
    "403": "Credential not valid for this account or operation",
    "404": "Connector, event or snapshot not found",
    "405": "Method not allowed",
    "409": "Conflicting content (x-should-retry: false)",
    "413": "Body too large",
    "415": "Unsupported Content-Type",
}
_ERRORS_BY_ACCESS = {
    "public": ("400",),
    "self": ("400", "401"),
    "read": ("400", "403", "404"),
    "write": ("400", "403", "404", "409", "413", "415"),
}


# ISSUE 9 HOOK: the dashboard's routes describe themselves in api.dashboard.
_RESULTS.update(dashboard.OPENAPI_RESULTS)
_QUERIES.update(dashboard.OPENAPI_QUERIES)


def _operation(route: Route) -> dict[str, Any]:
    result = _RESULTS.get(route.operation_id, {"$ref": "#/components/schemas/Connector"})
    if route.operation_id == "openapi":  # the document itself is served bare
        ok: dict[str, Any] = {"type": "object", "required": ["openapi", "paths"]}
    else:
        ok = {
            "type": "object",
            "required": ["result", "success", "errors", "messages"],
            "properties": {
                "result": result,
                "success": {"type": "boolean"},
                "errors": {"type": "array", "items": _ERR_ITEM},
                "messages": {"type": "array"},
            },
        }
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in _PATH_PARAMS.items()
            if "{" + name + "}" in route.template
        ]
        + [
            {"name": name, "in": "query", "required": required, "schema": schema}
            for name, required, schema in _QUERIES.get(route.operation_id, [])
        ],
        "responses": {
            "200": {
                "description": "Success",
                "content": {
                    "application/json": {
                        "schema": ok,
                    }
                },
            },
            **{
                status: {
                    "description": _ERRORS[status],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for status in dashboard.OPENAPI_ERRORS.get(
                    route.operation_id, _ERRORS_BY_ACCESS[route.access]
                )
            },
        },
    }
    if route.access in ("read", "write"):
        op["x-api-token-group"] = (
            ["Magic WAN Write"]
            if route.access == "write"
            else ["Magic WAN Write", "Magic WAN Read"]
        )
    elif route.access == "public":
        op["security"] = []
    if route.operation_id in _BODIES:
        op["requestBody"] = {"required": True, "content": _BODIES[route.operation_id]}
    return op


def document(routes: list[Route], prefix: str) -> bytes:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return orjson.dumps(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "connector-telemetry (Cloudflare Magic WAN Connector API)",
                "version": __version__,
            },
            "servers": [{"url": prefix}],
            "security": [{"api_token": []}, {"api_email": [], "api_key": []}],
            "components": {
                "securitySchemes": {
                    "api_token": {"type": "http", "scheme": "bearer"},
                    "api_email": {"type": "apiKey", "in": "header", "name": "X-Auth-Email"},
                    "api_key": {"type": "apiKey", "in": "header", "name": "X-Auth-Key"},
                },
                "schemas": SCHEMAS,
            },
            "paths": paths,
        }
    )


def route(get_document: Callable[[], bytes]) -> Route:
    def get_openapi(req: Request) -> bytes:
        return get_document()

    return Route("GET", "/openapi.json", get_openapi, "public", "openapi", "OpenAPI document")
