"""Connectors: create / update (PUT) / edit (PATCH) bodies (their settable fields are
checked by the connector's table of fields, models/connector.py; the device here), and
the operations themselves. PUT replaces every settable field (omitted ones return to
their defaults); PATCH changes only the fields it names."""

from __future__ import annotations

import secrets
from typing import Any

from connector_telemetry import clock
from connector_telemetry.errors import BadRequest, Conflict, NotFound, check_text
from connector_telemetry.models import DEVICE_TYPES, Connector
from connector_telemetry.models.connector import check_settable, settable
from connector_telemetry.service.credentials import digest, new_id
from connector_telemetry.store.base import Store

SETTABLE = settable()
#: Most characters of a ``device.id`` or ``device.serial_number`` given at creation.
DEVICE_ID_MAX = 128


def _check_body(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    for key in body:
        if key not in allowed:
            raise BadRequest(f"{key}: unknown field (allowed: {', '.join(allowed)})")
    return check_settable(body)


def _check_device(device: Any) -> dict[str, Any]:
    if not isinstance(device, dict):
        raise BadRequest(
            "device: required, an object with exactly one of id, serial_number or provision_license"
        )
    if len(device) != 1:
        raise BadRequest(
            "device: must have exactly one of id, serial_number or "
            f"provision_license, got {sorted(device) or 'none'}"
        )
    ((key, value),) = device.items()
    if key in ("id", "serial_number"):
        if isinstance(value, str):
            check_text(f"device.{key}", value)
        if not isinstance(value, str) or not value.strip() or len(value) > DEVICE_ID_MAX:
            raise BadRequest(
                f"device.{key}: expected a non-empty string of at most {DEVICE_ID_MAX} "
                f"characters, got {value!r}"
            )
    elif key == "provision_license":
        if value is not True:
            raise BadRequest("device.provision_license: must be true when it is the only field")
    else:
        raise BadRequest(
            f"device.{key}: unknown field (allowed: id, serial_number, provision_license)"
        )
    return {key: value}


def new_license_key() -> str:
    return "ctel_lic_" + secrets.token_urlsafe(32)


def list_connectors(store: Store, account_id: str, device_type: str | None) -> list[Connector]:
    if device_type is not None and device_type not in DEVICE_TYPES:
        raise BadRequest(f"device_type: must be MANAGED or LICENSED, got {device_type!r}")
    return store.list_connectors(account_id, device_type)


def create_connector(store: Store, account_id: str, body: Any) -> tuple[Connector, str | None]:
    """Create from a request body; returns the connector and, when provisioned, its
    license key (shown once)."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if "device" not in body:
        raise BadRequest(
            "device: required, an object with exactly one of id, serial_number or provision_license"
        )
    device = _check_device(body["device"])
    fields = _check_body(body, ("device", *SETTABLE))
    connector = Connector(
        account_id=account_id, id=new_id(), last_updated=clock.rfc3339(), **fields
    )
    license_key = None
    if "id" in device:
        connector.device_id = device["id"]
    elif "serial_number" in device:
        connector.device_id, connector.device_serial = new_id(), device["serial_number"]
    else:
        license_key = new_license_key()
        connector.device_id, connector.device_type = new_id(), "LICENSED"
        connector.license_key_hash = digest(license_key)
    if not store.create_connector(connector):
        raise Conflict(f"device {next(iter(device.values()))} already belongs to a connector")
    return connector, license_key


def get_connector(store: Store, account_id: str, connector_id: str) -> Connector:
    connector = store.get_connector(account_id, connector_id)
    if connector is None:
        raise NotFound(f"connector {connector_id} not found")
    return connector


def _change(
    store: Store, account_id: str, connector_id: str, body: Any, replace: bool
) -> tuple[Connector, str | None]:
    fields = _check_body(body, (*SETTABLE, "provision_license"))
    provision = body.get("provision_license", False)
    if not isinstance(provision, bool):
        raise BadRequest(f"provision_license: expected a boolean, got {provision!r}")
    license_key = new_license_key() if provision else None

    def change(connector: Connector) -> None:
        if replace:
            defaults = Connector(account_id=account_id, id=connector_id)
            for name in SETTABLE:
                setattr(connector, name, fields.get(name, getattr(defaults, name)))
        else:
            for name, value in fields.items():
                setattr(connector, name, value)
        if license_key is not None:
            connector.license_key_hash = digest(license_key)
        connector.last_updated = clock.rfc3339()

    connector = store.change_connector(account_id, connector_id, change)
    if connector is None:
        raise NotFound(f"connector {connector_id} not found")
    return connector, license_key


def update_connector(
    store: Store, account_id: str, connector_id: str, body: Any
) -> tuple[Connector, str | None]:
    return _change(store, account_id, connector_id, body, replace=True)


def edit_connector(
    store: Store, account_id: str, connector_id: str, body: Any
) -> tuple[Connector, str | None]:
    return _change(store, account_id, connector_id, body, replace=False)


def delete_connector(store: Store, account_id: str, connector_id: str) -> Connector:
    connector = store.delete_connector(account_id, connector_id)
    if connector is None:
        raise NotFound(f"connector {connector_id} not found")
    return connector
