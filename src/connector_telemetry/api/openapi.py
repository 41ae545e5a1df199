"""The OpenAPI document at ``{prefix}/openapi.json``: built from the route table,
so a route cannot exist without being described. Public, as Cloudflare's is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from connector_telemetry import __version__
from connector_telemetry.api.request import Request
from connector_telemetry.api.routing import Route
from connector_telemetry.models import Connector
from connector_telemetry.models.connector import settable, table
from connector_telemetry.service.connectors import DEVICE_ID_MAX
from connector_telemetry.service.events import KINDS
from connector_telemetry.service.snapshot_schema import SCHEMA

_NUM = {"type": "number"}
_STR = {"type": "string"}
_ERR_ITEM = {
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
            "errors": {"type": "array", "minItems": 1, "items": _ERR_ITEM},
            "messages": {"type": "array", "items": _ERR_ITEM},
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
                for status in _ERRORS_BY_ACCESS[route.access]
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
