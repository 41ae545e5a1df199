"""The OpenAPI document at ``{prefix}/openapi.json``, rendered from the routes'
declarations (api/route.py): a route cannot exist without being described, and the
document refuses to build when one lacks its result, its body or a schema it names.
Every limit in it is the one its parameter, body or field enforces (query ``limit``
maxima, ``max_batch_events``, the connector's field limits). Public, as Cloudflare's is.
Routes at the server's root (health checks) are outside the API and not described, but
for test mode's (``/_ctel/...``, issue 11): described when, and only when, the server runs
in test mode, tagged ``test-mode`` and marked ``x-ctel-test-only: true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from connector_telemetry import __version__
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import PATH_PARAMS, Raw, Route, Schema, Stream
from connector_telemetry.api.schemas import ERROR_ITEM, SCHEMAS

_ERRORS = {
    "400": "Bad request: malformed input, missing or malformed credentials",
    "401": "Invalid API token (token verify)",
    "403": "Credential not valid for this account or operation",
    "404": "Connector, event or snapshot not found",
    "405": "Method not allowed",
    "409": "Conflicting content (x-should-retry: false)",
    "410": "Resume token older than the items still kept (retention): code 1410",
    "413": "Body too large",
    "415": "Unsupported Content-Type",
}
_ERRORS_BY_ACCESS = {
    "public": ("400",),
    "self": ("400", "401"),
    "read": ("400", "403", "404"),
    "write": ("400", "403", "404", "409", "413", "415"),
}
#: Where test mode's API lives (api/testmode.py), and how the document marks it.
TEST_ROOT = "/_ctel/"
TEST_TAG = "test-mode"
_TEST_TAG_TEXT = (
    "Test only: served by `ctel serve --test-mode` alone (reset, accounts, faults, rate "
    "limit, request journal, clock), at the server's root, without credentials."
)
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


class UndescribedRoute(Exception):
    """A route whose declaration does not say enough to describe it."""


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _check(route: Route) -> None:
    where = f"{route.method} {route.template} ({route.operation_id})"
    if route.result is None:
        raise UndescribedRoute(f"{where}: no result schema")
    if route.method in ("POST", "PUT", "PATCH") and route.body is None:
        raise UndescribedRoute(f"{where}: takes a body, but declares no body schema")
    schemas = [route.result, *(p.schema for p in route.query)]
    if route.body is not None:
        schemas.append(route.body.schema)
    for schema in schemas:
        for target in _refs(schema):
            if target.removeprefix("#/components/schemas/") not in SCHEMAS:
                raise UndescribedRoute(f"{where}: no component schema for {target}")


def _answer(route: Route) -> Schema:
    """The 200 answer's body: the envelope around the result, or the raw result."""
    assert route.result is not None
    if isinstance(route.answer, Raw | Stream):
        return route.result
    return {
        "type": "object",
        "required": ["result", "success", "errors", "messages"],
        "properties": {
            "result": route.result,
            "success": {"type": "boolean"},
            "errors": {"type": "array", "items": ERROR_ITEM},
            "messages": {"type": "array"},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    _check(route)
    path_params = [
        {"name": name, "in": "path", "required": True, "schema": schema}
        for param in PATH_PARAMS.values()
        for name, schema in param.schemas.items()
        if "{" + name + "}" in route.template
    ]
    query_params = [
        {"name": p.name, "in": "query", "required": p.required, "schema": p.schema}
        for p in route.query
    ]
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": path_params + query_params,
        "responses": {
            "200": {
                "description": "Success",
                "content": {route.answer.content_type: {"schema": _answer(route)}},
            },
            **{
                status: {"description": _ERRORS[status], "content": _ERROR}
                for status in route.errors or _ERRORS_BY_ACCESS[route.access]
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
    if route.body is not None:
        content: dict[str, Any] = {"application/json": {"schema": route.body.schema}}
        if route.body.ndjson:
            content["application/x-ndjson"] = {"schema": {"type": "string"}}
        op["requestBody"] = {"required": True, "content": content}
    return op


def document(routes: list[Route], prefix: str) -> bytes:
    """The document of the routes under the API prefix; raises ``UndescribedRoute``."""
    paths: dict[str, dict[str, Any]] = {}
    tags = []
    for route in routes:
        if route.mount == "api":
            paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
        elif route.template.startswith(TEST_ROOT):
            # Test mode's API (issue 11): at the server's root, present only when the server
            # runs in test mode, marked test-only.
            path = paths.setdefault(route.template, {"servers": [{"url": "/"}]})
            path[route.method.lower()] = {
                **_operation(route),
                "tags": [TEST_TAG],
                "x-ctel-test-only": True,
            }
            tags = [{"name": TEST_TAG, "description": _TEST_TAG_TEXT}]
        else:
            _check(route)
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
            **({"tags": tags} if tags else {}),
        }
    )


def route(get_document: Callable[[], bytes]) -> Route:
    def get_openapi(req: Request) -> bytes:
        return get_document()

    return Route(
        "GET",
        "/openapi.json",
        get_openapi,
        "public",
        "openapi",
        "OpenAPI document",
        result={"type": "object", "required": ["openapi", "paths"]},
        answer=Raw("application/json"),
    )
