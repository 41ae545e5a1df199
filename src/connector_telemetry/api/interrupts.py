"""Interrupt routes: an operator creates one; listing with the connector's own
license key is its check-in (pending interrupts are returned and marked triggered)."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Body, Route, ref
from connector_telemetry.service import interrupts


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/interrupts"

    def create_interrupt(req: Request) -> Any:
        body = req.json()
        return interrupts.create_interrupt(store, req.account_id, req.connector_id, body).to_wire()

    def list_interrupts(req: Request) -> Any:
        assert req.principal is not None
        if req.principal.kind == "device":
            found = interrupts.pick_up_interrupts(store, req.account_id, req.connector_id)
        else:
            found = interrupts.list_interrupts(store, req.account_id, req.connector_id)
        return [i.to_wire() for i in found]

    return [
        Route(
            "POST",
            base,
            create_interrupt,
            "write",
            "interrupts.create",
            "Create an Interrupt",
            result=ref("Interrupt"),
            body=Body(ref("InterruptCreate")),
            writes=True,
        ),
        # The connector's check-in marks what it picks up: a write (listing with a token
        # runs on the writer thread too, and changes nothing).
        Route(
            "GET",
            base,
            list_interrupts,
            "read",
            "interrupts.list",
            "List Interrupts",
            result={"type": "array", "items": ref("Interrupt")},
            writes=True,
            device=True,
        ),
    ]
