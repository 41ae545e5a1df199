"""Connector routes: list, create, get, update (PUT), edit (PATCH), delete."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Body, Param, Route, ref
from connector_telemetry.models import DEVICE_TYPES
from connector_telemetry.service import connectors

DEVICE_TYPE = Param("device_type", {"type": "string", "enum": list(DEVICE_TYPES)})
CONNECTOR = ref("Connector")


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors"
    one = base + "/{connector_id}"

    def list_connectors(req: Request) -> Any:
        found = connectors.list_connectors(store, req.account_id, req.args["device_type"])
        return [c.to_wire() for c in found]

    def create_connector(req: Request) -> Any:
        connector, key = connectors.create_connector(store, req.account_id, req.json())
        return connector.to_wire(key)

    def get_connector(req: Request) -> Any:
        return connectors.get_connector(store, req.account_id, req.connector_id).to_wire()

    def update_connector(req: Request) -> Any:
        connector, key = connectors.update_connector(
            store, req.account_id, req.connector_id, req.json()
        )
        return connector.to_wire(key)

    def edit_connector(req: Request) -> Any:
        connector, key = connectors.edit_connector(
            store, req.account_id, req.connector_id, req.json()
        )
        return connector.to_wire(key)

    def delete_connector(req: Request) -> Any:
        return connectors.delete_connector(store, req.account_id, req.connector_id).to_wire()

    update = Body(ref("ConnectorUpdate"))
    return [
        Route(
            "GET",
            base,
            list_connectors,
            "read",
            "connectors.list",
            "List Connectors",
            result={"type": "array", "items": CONNECTOR},
            query=(DEVICE_TYPE,),
        ),
        Route(
            "POST",
            base,
            create_connector,
            "write",
            "connectors.create",
            "Create a Connector",
            result=CONNECTOR,
            body=Body(ref("ConnectorCreate")),
            writes=True,
        ),
        Route("GET", one, get_connector, "read", "connectors.get", "Fetch a Connector", CONNECTOR),
        Route(
            "PUT",
            one,
            update_connector,
            "write",
            "connectors.update",
            "Replace a Connector",
            result=CONNECTOR,
            body=update,
            writes=True,
        ),
        Route(
            "PATCH",
            one,
            edit_connector,
            "write",
            "connectors.edit",
            "Edit a Connector",
            result=CONNECTOR,
            body=update,
            writes=True,
        ),
        Route(
            "DELETE",
            one,
            delete_connector,
            "write",
            "connectors.delete",
            "Delete a Connector",
            result=CONNECTOR,
            writes=True,
        ),
    ]
