"""What the fleet summary (the dashboard's fleet page) is made of: the failure kinds ingest
watches for, and a connector's row as the summary reads it; and what the fleet's metrics read
(``FleetActivity``)."""

from __future__ import annotations

from dataclasses import dataclass

#: Event kinds that report a failure: the fleet summary keeps each connector's newest.
FAILURE_KINDS = frozenset(
    (
        "FinishAttestationFailure",
        "FinishRotateCryptKeyFailure",
        "FinishRotatePkiFailure",
        "FinishUpgradeFailure",
        "BlessSlotFailure",
        "HaError",
    )
)


@dataclass(frozen=True)
class FleetRow:
    """What the fleet summary shows of a connector (``device``: its id, type and serial),
    with what ingest keeps for it: the ``(t, record)`` of its two newest snapshots' health
    records and ``(t, n, k)`` of its newest failure. ``health_unknown``: it has snapshots
    from before these were kept (schema 4)."""

    account_id: str
    id: str
    activated: bool
    notes: str
    device: tuple[str, str, str | None]
    last_heartbeat: str | None
    last_seen_version: str | None
    health: tuple[float, bytes] | None
    health_prev: tuple[float, bytes] | None
    failure: tuple[float, float, str] | None
    health_unknown: bool = False


@dataclass(frozen=True)
class FleetActivity:
    """What the fleet's metrics (issue 12) read of an account beside the snapshots:
    ``(connector id, kind, count)`` of its stored events, and the connectors with a pending
    interrupt."""

    events: list[tuple[str, str, int]]
    pending_interrupts: frozenset[str]
