"""Telemetry snapshot routes: ingest (ours), list, latest, get."""

from __future__ import annotations

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request, query_limit, query_range
from connector_telemetry.api.routing import Route
from connector_telemetry.service import snapshots


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots"

    async def record_snapshots(req: Request) -> bytes:
        return await ctx.record(req, snapshots.parse_batch, snapshots.record_snapshots)

    def list_snapshots(req: Request) -> bytes:
        query = req.query()
        t_from, t_to = query_range(query)
        limit = query_limit(query, snapshots.LIST_LIMIT_DEFAULT, snapshots.LIST_LIMIT_MAX)
        spec = snapshots.ListQuery(t_from, t_to, limit)
        cursor = query.get("cursor") or None
        result = snapshots.list_snapshots(store, req.account_id, req.connector_id, spec, cursor)
        return envelope.ok(result)

    def latest_snapshots(req: Request) -> bytes:
        limit = query_limit(req.query(), snapshots.LATEST_LIMIT_DEFAULT, snapshots.LATEST_LIMIT_MAX)
        return envelope.ok_raw(
            snapshots.latest_snapshots(store, req.account_id, req.connector_id, limit)
        )

    def get_snapshot(req: Request) -> bytes:
        t = req.params["snapshot_t"]
        return envelope.ok_raw(snapshots.get_snapshot(store, req.account_id, req.connector_id, t))

    return [
        Route(
            "POST",
            base,
            record_snapshots,
            "write",
            "snapshots.record",
            "Record Snapshots (ctel)",
            device=True,
        ),
        Route("GET", base, list_snapshots, "read", "snapshots.list", "List Snapshots"),
        Route(
            "GET",
            base + "/latest",
            latest_snapshots,
            "read",
            "snapshots.latest.list",
            "Get latest Snapshots",
        ),
        Route("GET", base + "/{snapshot_t}", get_snapshot, "read", "snapshots.get", "Get Snapshot"),
    ]
