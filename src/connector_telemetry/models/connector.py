"""A Magic WAN Connector as the layers pass it to each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector_telemetry.numbers import wire

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
DEVICE_TYPES = ("MANAGED", "LICENSED")


@dataclass
class Connector:
    account_id: str
    id: str
    activated: bool = False
    interrupt_window_days_of_week: list[str] = field(default_factory=lambda: list(DAYS))
    interrupt_window_duration_hours: float = 4.0
    interrupt_window_embargo_dates: list[str] = field(default_factory=list)
    interrupt_window_hour_of_day: float = 0.0
    notes: str = ""
    timezone: str = "UTC"
    device_id: str = ""
    device_serial: str | None = None
    device_type: str = "MANAGED"
    last_updated: str = ""
    last_heartbeat: str | None = None
    last_seen_version: str | None = None
    license_key_hash: bytes | None = None

    def to_wire(self, license_key: str | None = None) -> dict[str, Any]:
        device: dict[str, Any] = {"id": self.device_id, "type": self.device_type}
        if self.device_serial is not None:
            device["serial_number"] = self.device_serial
        out: dict[str, Any] = {
            "id": self.id,
            "activated": self.activated,
            "interrupt_window_days_of_week": self.interrupt_window_days_of_week,
            "interrupt_window_duration_hours": wire(self.interrupt_window_duration_hours),
            "interrupt_window_embargo_dates": self.interrupt_window_embargo_dates,
            "interrupt_window_hour_of_day": wire(self.interrupt_window_hour_of_day),
            "last_updated": self.last_updated,
            "notes": self.notes,
            "timezone": self.timezone,
            "device": device,
        }
        if self.last_heartbeat is not None:
            out["last_heartbeat"] = self.last_heartbeat
        if self.last_seen_version is not None:
            out["last_seen_version"] = self.last_seen_version
        if license_key is not None:
            out["license_key"] = license_key
        return out
