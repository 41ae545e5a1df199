"""ISSUE 9 HOOK: the routes the dashboard needs beyond Cloudflare's, kept in this one module
so they can move to the route declarations of the refactored server as they are.

- List Accounts (Cloudflare's ``GET /accounts``): which accounts a pasted credential may
  use, and whether it may write there (the dashboard's sign-in).
- Fleet summary (ours): every connector of an account with its latest health and failure.
- Snapshot series (ours): a range of snapshots as chart columns, rates computed.
"""

from __future__ import annotations

from typing import Any

from connector_telemetry import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request, query_limit, query_number, query_range
from connector_telemetry.api.routing import Route
from connector_telemetry.errors import InvalidQuery
from connector_telemetry.service import credentials, fleet, series

FLEET_SUMMARY = "/accounts/{account_id}/magic/connectors/telemetry/summary"
SNAPSHOT_SERIES = (
    "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots/series"
)


def routes(ctx: Context) -> list[Route]:
    store = ctx.store

    def list_accounts(req: Request) -> bytes:
        principal = ctx.auth.authenticate(req.headers)
        query = req.query()
        page = query_limit(query, 1, 1_000_000, name="page")
        per_page = query_limit(query, 20, 50, name="per_page")
        direction = query.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise InvalidQuery(f"direction: must be asc or desc, got {direction!r}")
        accounts = credentials.list_accounts(store, principal, query.get("name"))
        if direction == "desc":
            accounts.reverse()
        shown = accounts[(page - 1) * per_page : page * per_page]
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(shown),
            "total_count": len(accounts),
            "total_pages": max(1, -(-len(accounts) // per_page)),
        }
        return envelope.ok_with_info(shown, info)

    def fleet_summary(req: Request) -> bytes:
        since = query_number(req.query(), "changed_since", required=False)
        return envelope.ok(fleet.fleet_summary(store, req.account_id, since))

    def snapshot_series(req: Request) -> bytes:
        query = req.query()
        t_from, t_to = query_range(query)
        limit = query_limit(query, series.LIMIT_DEFAULT, series.LIMIT_MAX)
        spec = series.SeriesQuery(t_from, t_to, limit)
        cursor = query.get("cursor") or None
        return envelope.ok(
            series.snapshot_series(store, req.account_id, req.connector_id, spec, cursor)
        )

    return [
        Route("GET", "/accounts", list_accounts, "self", "accounts.list", "List Accounts"),
        Route("GET", FLEET_SUMMARY, fleet_summary, "read", "fleet.summary", "Fleet summary (ctel)"),
        Route(
            "GET",
            SNAPSHOT_SERIES,
            snapshot_series,
            "read",
            "snapshots.series",
            "Snapshot series (ctel)",
        ),
    ]


# -- what the OpenAPI document says of these routes (merged by api.openapi) --------------

_NUM = {"type": "number"}
_NULLABLE_NUM = {"type": "number", "nullable": True}
_COLUMN = {"type": "array", "items": _NULLABLE_NUM}


def _named(key: str, *columns: str) -> dict[str, Any]:
    props: dict[str, Any] = {key: {"type": "string"}, **dict.fromkeys(columns, _COLUMN)}
    return {"type": "array", "items": {"type": "object", "required": [key], "properties": props}}


_SNAPSHOT_SUMMARY = {
    "type": "object",
    "nullable": True,
    "properties": {
        "t": _NUM,
        "interval": _NULLABLE_NUM,
        "cpu": _NULLABLE_NUM,
        "load_1m": _NULLABLE_NUM,
        "memory": _NULLABLE_NUM,
        "disk": {
            "type": "object",
            "nullable": True,
            "properties": {"mount": {"type": "string"}, "used": _NUM},
        },
        "tunnels": {
            "type": "object",
            "nullable": True,
            "properties": {"up": _NUM, "degraded": _NUM, "total": _NUM},
        },
    },
}
OPENAPI_RESULTS: dict[str, Any] = {
    "accounts.list": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "name", "type"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "type": {"type": "string", "enum": ["standard", "enterprise"]},
                "created_on": {"type": "string"},
                "permissions": {"type": "object"},
            },
        },
    },
    "fleet.summary": {
        "type": "object",
        "required": ["as_of", "connectors"],
        "properties": {
            "as_of": _NUM,
            "connectors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "activated", "notes", "device", "snapshot", "failure"],
                    "properties": {
                        "id": {"type": "string"},
                        "activated": {"type": "boolean"},
                        "notes": {"type": "string"},
                        "device": {"type": "object"},
                        "last_heartbeat": {"type": "string"},
                        "last_seen_version": {"type": "string"},
                        "snapshot": _SNAPSHOT_SUMMARY,
                        "failure": {
                            "type": "object",
                            "nullable": True,
                            "properties": {"t": _NUM, "n": _NUM, "k": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
    "snapshots.series": {
        "type": "object",
        "required": ["count", "t", "cpu", "load", "memory", "tunnels", "mounts", "interfaces"],
        "properties": {
            "count": _NUM,
            "cursor": {"type": "string"},
            "t": {"type": "array", "items": _NUM},
            "cpu": _COLUMN,
            "memory": _COLUMN,
            "load": {"type": "object", "additionalProperties": _COLUMN},
            "tunnels": {"type": "object", "additionalProperties": _COLUMN},
            "mounts": _named("name", "used"),
            "interfaces": _named("name", "rx", "tx"),
            "thermals": _named("label", "celsius"),
        },
    },
}
_WHOLE = {"type": "integer", "minimum": 1}
OPENAPI_QUERIES: dict[str, list[tuple[str, bool, dict[str, Any]]]] = {
    "accounts.list": [
        ("page", False, _WHOLE),
        ("per_page", False, {"type": "integer", "minimum": 1, "maximum": 50}),
        ("name", False, {"type": "string"}),
        ("direction", False, {"type": "string", "enum": ["asc", "desc"]}),
    ],
    "fleet.summary": [("changed_since", False, _NUM)],
    "snapshots.series": [
        ("from", True, _NUM),
        ("to", True, _NUM),
        ("cursor", False, {"type": "string"}),
        ("limit", False, {"type": "integer", "minimum": 1, "maximum": series.LIMIT_MAX}),
    ],
}
#: List Accounts authenticates itself, and refuses license keys and unknown tokens (403).
OPENAPI_ERRORS: dict[str, tuple[str, ...]] = {"accounts.list": ("400", "403")}
