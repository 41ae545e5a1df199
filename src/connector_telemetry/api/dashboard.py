"""The routes the dashboard needs beyond Cloudflare's (its files are served by ``web/``).

- List Accounts (Cloudflare's ``GET /accounts``): which accounts a pasted credential may
  use, and whether it may write there (the dashboard's sign-in).
- Fleet summary (ours): every connector of an account with its latest health and failure.
- Snapshot series (ours): a range of snapshots as chart columns, rates computed.
"""

from __future__ import annotations

from typing import Any

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.events import FROM, TO
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import CURSOR, Param, Raw, Route, choice, limit, number
from connector_telemetry.api.schemas import ERROR_ITEM
from connector_telemetry.errors import InvalidQuery
from connector_telemetry.numbers import parse_query_number
from connector_telemetry.service import credentials, fleet, series

FLEET_SUMMARY = "/accounts/{account_id}/magic/connectors/telemetry/summary"
SNAPSHOT_SERIES = (
    "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots/series"
)


def whole(name: str, default: int, maximum: int) -> Param:
    """A whole number from 1 to ``maximum`` (Cloudflare's ``page``, ``per_page``)."""

    def parse(raw: str | None) -> int:
        if raw is None:
            return default
        value = parse_query_number(raw)
        if value is None or not value.is_integer() or not 1 <= value <= maximum:
            raise InvalidQuery(f"{name}: must be a whole number from 1 to {maximum}, got {raw!r}")
        return int(value)

    return Param(name, {"type": "integer", "minimum": 1, "maximum": maximum}, parse=parse)


ACCOUNTS_QUERY = (
    whole("page", 1, 1_000_000),
    whole("per_page", 20, 50),
    Param("name", {"type": "string"}),
    choice("direction", ("asc", "desc"), "direction"),
)


def routes(ctx: Context) -> list[Route]:
    store = ctx.store

    def list_accounts(req: Request) -> bytes:
        principal = ctx.auth.authenticate(req.headers)
        args = req.args
        page, per_page = args["page"], args["per_page"]
        accounts = credentials.list_accounts(store, principal, args["name"])
        if args["direction"] == "desc":
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

    def fleet_summary(req: Request) -> Any:
        return fleet.fleet_summary(store, req.account_id, req.args["changed_since"])

    def snapshot_series(req: Request) -> Any:
        args = req.args
        spec = series.SeriesQuery(args["from"], args["to"], args["limit"])
        return series.snapshot_series(store, req.account_id, req.connector_id, spec, args["cursor"])

    return [
        Route(
            "GET",
            "/accounts",
            list_accounts,
            "self",
            "accounts.list",
            "List Accounts",
            result=ACCOUNT_LIST,
            query=ACCOUNTS_QUERY,
            answer=Raw("application/json"),
            errors=("400", "403"),
        ),
        Route(
            "GET",
            FLEET_SUMMARY,
            fleet_summary,
            "read",
            "fleet.summary",
            "Fleet summary (ctel)",
            result=FLEET_RESULT,
            query=(number("changed_since", required=False),),
        ),
        Route(
            "GET",
            SNAPSHOT_SERIES,
            snapshot_series,
            "read",
            "snapshots.series",
            "Snapshot series (ctel)",
            result=SERIES_RESULT,
            query=(FROM, TO, CURSOR, limit(series.LIMIT_DEFAULT, series.LIMIT_MAX)),
        ),
    ]


# -- the results' schemas ------------------------------------------------------------------

_NUM = {"type": "number"}
_NULLABLE_NUM = {"type": "number", "nullable": True}
_COLUMN = {"type": "array", "items": _NULLABLE_NUM}


def _named(key: str, *columns: str) -> dict[str, Any]:
    props: dict[str, Any] = {key: {"type": "string"}, **{c: _COLUMN for c in columns}}
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
_ACCOUNTS = {
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
}
#: List Accounts' whole body (Cloudflare's paged envelope, with ``result_info``).
ACCOUNT_LIST: dict[str, Any] = {
    "type": "object",
    "required": ["result", "success", "errors", "messages", "result_info"],
    "properties": {
        "result": _ACCOUNTS,
        "result_info": {
            "type": "object",
            "properties": {
                key: {"type": "integer"}
                for key in ("page", "per_page", "count", "total_count", "total_pages")
            },
        },
        "success": {"type": "boolean"},
        "errors": {"type": "array", "items": ERROR_ITEM},
        "messages": {"type": "array"},
    },
}
FLEET_RESULT: dict[str, Any] = {
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
}
SERIES_RESULT: dict[str, Any] = {
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
}
