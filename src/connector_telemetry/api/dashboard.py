"""ISSUE 9 HOOK: the routes the dashboard needs beyond Cloudflare's, kept in this one module
so they can move to the route declarations of the refactored server as they are.

- List Accounts (Cloudflare's ``GET /accounts``): which accounts a pasted credential may
  use, and whether it may write there (the dashboard's sign-in).
- Fleet summary (ours): every connector of an account with its latest health and failure.
- Snapshot series (ours): a range of snapshots as chart columns, rates computed.
"""

from __future__ import annotations

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
