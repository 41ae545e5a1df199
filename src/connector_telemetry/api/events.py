"""Telemetry event routes: ingest (ours), list, latest, get (the seed)."""

from __future__ import annotations

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request, query_limit, query_range
from connector_telemetry.api.routing import Route
from connector_telemetry.errors import InvalidQuery
from connector_telemetry.service import events


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"

    async def record_events(req: Request) -> bytes:
        return await ctx.record(req, events.parse_batch, events.record_events)

    def list_events(req: Request) -> bytes:
        query = req.query()
        t_from, t_to = query_range(query)
        kind = query.get("k")
        if kind is not None and kind not in events.KINDS:
            raise InvalidQuery(f"k: unknown event kind {kind!r}")
        spec = events.ListQuery(
            t_from,
            t_to,
            kind,
            query_limit(query, events.LIST_LIMIT_DEFAULT, events.LIST_LIMIT_MAX),
        )
        cursor = query.get("cursor") or None
        result = events.list_events(store, req.account_id, req.connector_id, spec, cursor)
        return envelope.ok(result)

    def latest_events(req: Request) -> bytes:
        limit = query_limit(req.query(), events.LATEST_LIMIT_DEFAULT, events.LATEST_LIMIT_MAX)
        return envelope.ok_raw(events.latest_events(store, req.account_id, req.connector_id, limit))

    def get_event(req: Request) -> bytes:
        keys = req.params["event_t.event_n"]
        return envelope.ok_raw(events.get_event(store, req.account_id, req.connector_id, keys))

    return [
        Route(
            "POST",
            base,
            record_events,
            "write",
            "events.record",
            "Record Events (ctel)",
            device=True,
        ),
        Route("GET", base, list_events, "read", "events.list", "List Events"),
        Route(
            "GET",
            base + "/latest",
            latest_events,
            "read",
            "events.latest.list",
            "Get latest Events",
        ),
        Route("GET", base + "/{event_t}.{event_n}", get_event, "read", "events.get", "Get Event"),
    ]
