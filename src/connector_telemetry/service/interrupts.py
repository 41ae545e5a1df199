"""Interrupts: an operator asks a connector to reboot, restart or shut down; the
connector picks pending interrupts up at check-in. At most one is pending."""

from __future__ import annotations

from typing import Any

from connector_telemetry import clock
from connector_telemetry.errors import BadRequest
from connector_telemetry.models import Interrupt
from connector_telemetry.store.base import Store

ACTIONS = ("reboot", "restart", "shutdown")


def check_body(body: Any) -> tuple[str, bool]:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object with one of reboot, restart, shutdown")
    unknown = [key for key in body if key not in ACTIONS]
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (allowed: {', '.join(ACTIONS)})")
    if len(body) != 1:
        raise BadRequest(
            f"exactly one action is required (reboot, restart or shutdown), got {len(body)}"
        )
    ((action, options),) = body.items()
    if not isinstance(options, dict):
        raise BadRequest(f"{action}: expected an object {{purge?: boolean}}")
    for key in options:
        if key != "purge":
            raise BadRequest(f"{action}.{key}: unknown field (allowed: purge)")
    purge = options.get("purge", False)
    if not isinstance(purge, bool):
        raise BadRequest(f"{action}.purge: expected a boolean, got {purge!r}")
    return action, purge


def create_interrupt(store: Store, account_id: str, connector_id: str, body: Any) -> Interrupt:
    action, purge = check_body(body)
    return store.create_interrupt(account_id, connector_id, action, purge, clock.rfc3339())


def list_interrupts(store: Store, account_id: str, connector_id: str) -> list[Interrupt]:
    return store.list_interrupts(account_id, connector_id)


def pick_up_interrupts(store: Store, account_id: str, connector_id: str) -> list[Interrupt]:
    """The connector's check-in: its pending interrupts, now marked triggered."""
    return store.pick_up_interrupts(account_id, connector_id, clock.rfc3339())
