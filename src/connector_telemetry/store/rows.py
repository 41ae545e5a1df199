"""What both stores share that is not SQL: the connectors table's columns and how a row
maps to and from a ``Connector``."""

from __future__ import annotations

from typing import Any

import orjson

from connector_telemetry.service.models import Connector

CONNECTOR_COLUMNS = (
    "account_id, id, activated, days_of_week, duration_hours, embargo_dates, hour_of_day, "
    "notes, timezone, device_id, device_serial, device_type, last_updated, last_heartbeat, "
    "last_seen_version, license_key_hash"
)


def connector_from_row(row: tuple[Any, ...]) -> Connector:
    (account_id, cid, activated, days, duration, embargo, hour, notes, tz, device_id, serial,
     device_type, last_updated, heartbeat, version, key_hash) = row  # fmt: skip
    return Connector(
        account_id=account_id,
        id=cid,
        activated=bool(activated),
        interrupt_window_days_of_week=orjson.loads(days),
        interrupt_window_duration_hours=float(duration),
        interrupt_window_embargo_dates=orjson.loads(embargo),
        interrupt_window_hour_of_day=float(hour),
        notes=notes,
        timezone=tz,
        device_id=device_id,
        device_serial=serial,
        device_type=device_type,
        last_updated=last_updated,
        last_heartbeat=heartbeat,
        last_seen_version=version,
        license_key_hash=None if key_hash is None else bytes(key_hash),
    )


def connector_values(c: Connector) -> tuple[object, ...]:
    """The row for ``CONNECTOR_COLUMNS``, in that order."""
    return (
        c.account_id,
        c.id,
        c.activated,
        orjson.dumps(c.interrupt_window_days_of_week).decode(),
        c.interrupt_window_duration_hours,
        orjson.dumps(c.interrupt_window_embargo_dates).decode(),
        c.interrupt_window_hour_of_day,
        c.notes,
        c.timezone,
        c.device_id,
        c.device_serial,
        c.device_type,
        c.last_updated,
        c.last_heartbeat,
        c.last_seen_version,
        c.license_key_hash,
    )
