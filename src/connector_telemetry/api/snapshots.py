"""Telemetry snapshot routes: ingest (ours), list, latest, get."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.context import INGEST_RESULT, Context
from connector_telemetry.api.events import FROM, TO
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import CURSOR, Route, limit, ref
from connector_telemetry.service import snapshots
from connector_telemetry.store.base import at_once

LIST_LIMIT = limit(snapshots.LIST_LIMIT_DEFAULT, snapshots.LIST_LIMIT_MAX)
LATEST_LIMIT = limit(snapshots.LATEST_LIMIT_DEFAULT, snapshots.LATEST_LIMIT_MAX)


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/snapshots"

    def list_snapshots(req: Request) -> Any:
        args = req.args
        spec = snapshots.ListQuery(args["from"], args["to"], args["limit"])
        cursor = args["cursor"]
        return snapshots.list_snapshots(store, req.account_id, req.connector_id, spec, cursor)

    def latest_snapshots(req: Request) -> bytes:
        limit = req.args["limit"]
        return snapshots.latest_snapshots(store, req.account_id, req.connector_id, limit)

    def get_snapshot(req: Request) -> bytes:
        t = req.params["snapshot_t"]
        return snapshots.get_snapshot(store, req.account_id, req.connector_id, t)

    return [
        Route(
            "POST",
            base,
            ctx.ingest("snapshots", snapshots.parse_batch, at_once(snapshots.record_snapshots)),
            "write",
            "snapshots.record",
            "Record Snapshots (ctel)",
            result=INGEST_RESULT,
            body=ctx.batch(ref("Snapshot")),
            writes=True,
            device=True,
        ),
        Route(
            "GET",
            base,
            list_snapshots,
            "read",
            "snapshots.list",
            "List Snapshots",
            result=ref("SnapshotList"),
            query=(FROM, TO, CURSOR, LIST_LIMIT),
        ),
        Route(
            "GET",
            base + "/latest",
            latest_snapshots,
            "read",
            "snapshots.latest.list",
            "Get latest Snapshots",
            result=ref("SnapshotLatest"),
            query=(LATEST_LIMIT,),
        ),
        Route(
            "GET",
            base + "/{snapshot_t}",
            get_snapshot,
            "read",
            "snapshots.get",
            "Get Snapshot",
            result=ref("Snapshot"),
        ),
    ]
