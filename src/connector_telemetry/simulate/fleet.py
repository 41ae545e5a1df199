"""Pure generation: a :class:`SimConfig` in, every connector's create body, events and
snapshots out. No I/O, no clock, no global state; the same config gives the same
bytes (see ``tests/test_simulate.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connector_telemetry.simulate.plan import (
    Identity,
    Release,
    SimConfig,
    make_identity,
    releases,
)
from connector_telemetry.simulate.snapshots import generate_snapshots
from connector_telemetry.simulate.timeline import Timeline, build_timeline


@dataclass(frozen=True)
class SimConnector:
    """One simulated connector. ``events`` are ready to post (``t`` and ``n`` always
    set, so re-sending is idempotent); snapshots are generated on demand, in time
    order, because a large fleet's would not fit in memory at once."""

    config: SimConfig
    identity: Identity
    timeline: Timeline

    @property
    def create_body(self) -> dict[str, Any]:
        return self.identity.create_body()

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.timeline.events

    @property
    def snapshot_count(self) -> int:
        return len(self.timeline.snapshot_times)

    def snapshots(self) -> Iterator[dict[str, Any]]:
        return generate_snapshots(self.config, self.identity, self.timeline)


def generate_connector(
    config: SimConfig, index: int, fleet_releases: list[Release] | None = None
) -> SimConnector:
    """Connector ``index`` (from 0) of the fleet; it does not depend on how many
    connectors the fleet has."""
    ident = make_identity(config.seed, index)
    timeline = build_timeline(config, ident, fleet_releases or releases(config))
    return SimConnector(config, ident, timeline)


def generate_fleet(config: SimConfig) -> list[SimConnector]:
    fleet_releases = releases(config)
    return [generate_connector(config, i, fleet_releases) for i in range(config.connectors)]
