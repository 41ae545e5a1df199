"""Connector routes: list, create, get, update (PUT), edit (PATCH), delete."""

from __future__ import annotations

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.routing import Route
from connector_telemetry.service import connectors


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors"

    def list_connectors(req: Request) -> bytes:
        device_type = req.query().get("device_type")
        found = connectors.list_connectors(store, req.account_id, device_type)
        return envelope.ok([c.to_wire() for c in found])

    async def create_connector(req: Request) -> bytes:
        body = req.json()
        connector, key = await ctx.write(connectors.create_connector, store, req.account_id, body)
        return envelope.ok(connector.to_wire(key))

    def get_connector(req: Request) -> bytes:
        connector = connectors.get_connector(store, req.account_id, req.connector_id)
        return envelope.ok(connector.to_wire())

    async def update_connector(req: Request) -> bytes:
        body = req.json()
        connector, key = await ctx.write(
            connectors.update_connector, store, req.account_id, req.connector_id, body
        )
        return envelope.ok(connector.to_wire(key))

    async def edit_connector(req: Request) -> bytes:
        body = req.json()
        connector, key = await ctx.write(
            connectors.edit_connector, store, req.account_id, req.connector_id, body
        )
        return envelope.ok(connector.to_wire(key))

    async def delete_connector(req: Request) -> bytes:
        connector = await ctx.write(
            connectors.delete_connector, store, req.account_id, req.connector_id
        )
        return envelope.ok(connector.to_wire())

    one = base + "/{connector_id}"
    return [
        Route("GET", base, list_connectors, "read", "connectors.list", "List Connectors"),
        Route("POST", base, create_connector, "write", "connectors.create", "Create a Connector"),
        Route("GET", one, get_connector, "read", "connectors.get", "Fetch a Connector"),
        Route("PUT", one, update_connector, "write", "connectors.update", "Replace a Connector"),
        Route("PATCH", one, edit_connector, "write", "connectors.edit", "Edit a Connector"),
        Route("DELETE", one, delete_connector, "write", "connectors.delete", "Delete a Connector"),
    ]
