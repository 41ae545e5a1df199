"""Interrupt routes: an operator creates one; listing with the connector's own
license key is its check-in (pending interrupts are returned and marked triggered)."""

from __future__ import annotations

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.routing import Route
from connector_telemetry.service import interrupts


def routes(ctx: Context) -> list[Route]:
    store = ctx.store
    base = "/accounts/{account_id}/magic/connectors/{connector_id}/interrupts"

    async def create_interrupt(req: Request) -> bytes:
        body = req.json()
        interrupt = await ctx.write(
            interrupts.create_interrupt, store, req.account_id, req.connector_id, body
        )
        return envelope.ok(interrupt.to_wire())

    async def list_interrupts(req: Request) -> bytes:
        assert req.principal is not None
        if req.principal.kind == "device":
            found = await ctx.write(
                interrupts.pick_up_interrupts, store, req.account_id, req.connector_id
            )
        else:
            found = interrupts.list_interrupts(store, req.account_id, req.connector_id)
        return envelope.ok([i.to_wire() for i in found])

    return [
        Route("POST", base, create_interrupt, "write", "interrupts.create", "Create an Interrupt"),
        Route(
            "GET", base, list_interrupts, "read", "interrupts.list", "List Interrupts", device=True
        ),
    ]
