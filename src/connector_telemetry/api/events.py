"""Telemetry event routes: ingest (ours), list, latest, get (the seed)."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.context import INGEST_RESULT, Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import CURSOR, Route, choice, limit, number, ref
from connector_telemetry.service import events

FROM, TO = number("from", required=True), number("to", required=True)
KIND = choice("k", events.KINDS, "event kind")
LIST_LIMIT = limit(events.LIST_LIMIT_DEFAULT, events.LIST_LIMIT_MAX)
LATEST_LIMIT = limit(events.LATEST_LIMIT_DEFAULT, events.LATEST_LIMIT_MAX)


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/telemetry/events"

    def list_events(req: Request) -> Any:
        args = req.args
        spec = events.ListQuery(args["from"], args["to"], args["k"], args["limit"])
        return events.list_events(store, req.account_id, req.connector_id, spec, args["cursor"])

    async def list_events_async(req: Request) -> Any:
        args = req.args
        spec = events.ListQuery(args["from"], args["to"], args["k"], args["limit"])
        ids = req.account_id, req.connector_id
        return await events.list_events_async(store, *ids, spec, args["cursor"])

    def latest_events(req: Request) -> bytes:
        return events.latest_events(store, req.account_id, req.connector_id, req.args["limit"])

    async def latest_events_async(req: Request) -> bytes:
        ids = req.account_id, req.connector_id
        return await events.latest_events_async(store, *ids, req.args["limit"])

    def get_event(req: Request) -> bytes:
        keys = req.params["event_t.event_n"]
        return events.get_event(store, req.account_id, req.connector_id, keys)

    async def get_event_async(req: Request) -> bytes:
        keys = req.params["event_t.event_n"]
        return await events.get_event_async(store, req.account_id, req.connector_id, keys)

    return [
        Route(
            "POST",
            base,
            ctx.ingest("events", events.parse_batch, events.record_events_staged),
            "write",
            "events.record",
            "Record Events (ctel)",
            result=INGEST_RESULT,
            body=ctx.batch(ref("NewEvent")),
            writes=True,
            device=True,
        ),
        Route(
            "GET",
            base,
            list_events,
            "read",
            "events.list",
            "List Events",
            result=ref("EventList"),
            query=(FROM, TO, CURSOR, KIND, LIST_LIMIT),
            awaiting=list_events_async,
        ),
        Route(
            "GET",
            base + "/latest",
            latest_events,
            "read",
            "events.latest.list",
            "Get latest Events",
            result=ref("EventLatest"),
            query=(LATEST_LIMIT,),
            awaiting=latest_events_async,
        ),
        Route(
            "GET",
            base + "/{event_t}.{event_n}",
            get_event,
            "read",
            "events.get",
            "Get Event",
            result=ref("RecordedEvent"),
            awaiting=get_event_async,
        ),
    ]
