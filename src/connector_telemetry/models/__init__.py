"""Plain data the layers pass to each other (no HTTP, no SQL), below both ``service/``
and ``store/``."""

from connector_telemetry.models.access import (
    PERMISSION_LABELS,
    PERMISSION_NAMES,
    Permission,
    Principal,
    Token,
    User,
)
from connector_telemetry.models.connector import DAYS, DEVICE_TYPES, Connector
from connector_telemetry.models.fleet import FAILURE_KINDS, FleetActivity, FleetRow
from connector_telemetry.models.telemetry import (
    EventMeta,
    FeedFilter,
    FeedItem,
    IngestResult,
    Interrupt,
    NewEvent,
    NewSnapshot,
    event_doc,
    same_content,
)

__all__ = [
    "DAYS",
    "DEVICE_TYPES",
    "FAILURE_KINDS",
    "PERMISSION_LABELS",
    "PERMISSION_NAMES",
    "Connector",
    "EventMeta",
    "FeedFilter",
    "FeedItem",
    "FleetActivity",
    "FleetRow",
    "IngestResult",
    "Interrupt",
    "NewEvent",
    "NewSnapshot",
    "Permission",
    "Principal",
    "Token",
    "User",
    "event_doc",
    "same_content",
]
