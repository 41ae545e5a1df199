"""A small, plausible demo fleet: three connectors and a week of lifecycle events,
recorded through the same ingest path the API uses. Deterministic for a seed."""

from __future__ import annotations

import random
from typing import Any

import orjson

from connector_telemetry.service import clock, connectors, events
from connector_telemetry.store.base import Store

_SITES = (
    ("lisbon-branch", "Europe/Lisbon"),
    ("austin-dc", "America/Chicago"),
    ("osaka-store", "Asia/Tokyo"),
)
_VERSIONS = ("2026.9.1", "2026.10.0", "2026.11.2")


def demo_events(
    rng: random.Random, start: float, days: int, tunnels: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    version = _VERSIONS[0]
    n = 0

    def add(t: float, kind: str, **payload: Any) -> None:
        nonlocal n
        out.append({"e": {"k": kind, **payload}, "t": round(t, 3), "n": n, "v": version})
        n += 1

    t = start
    for kind in (
        "Init",
        "StartAttestation",
        "FinishAttestationSuccess",
        "Reconcile",
        "ConfigureCloudflaredTunnel",
    ):
        add(t, kind)
        t += rng.uniform(0.5, 4)
    for tunnel in tunnels:
        add(t, "RekeyInstallBoth", tunnel_id=tunnel)
    end = start + days * 86400
    upgraded = 0
    while t < end:
        t += rng.uniform(3600, 5 * 3600)
        roll = rng.random()
        if roll < 0.45:
            tunnel = rng.choice(tunnels)
            for kind in ("RekeyStart", "RekeyAdvance", "RekeyComplete"):
                add(t, kind, tunnel_id=tunnel)
                t += rng.uniform(1, 30)
        elif roll < 0.6:
            add(t, "StartRotateCryptKey")
            ok = rng.random() > 0.05
            add(t + rng.uniform(1, 10), "FinishRotateCryptKey" + ("Success" if ok else "Failure"))
        elif roll < 0.7:
            add(t, "StartRotatePki")
            add(t + rng.uniform(1, 20), "FinishRotatePkiSuccess")
        elif roll < 0.8:
            add(t, "Reconcile")
        elif roll < 0.88 and upgraded + 1 < len(_VERSIONS):
            target = _VERSIONS[upgraded + 1]
            add(t, "StartUpgrade", url=f"https://updates.example.net/connector/{target}.bundle")
            t += rng.uniform(60, 300)
            if rng.random() < 0.9:
                add(t, "FinishUpgradeSuccess")
                upgraded += 1
                version = target
                add(t + 5, "Leave")
                add(t + 30, "Init")
                add(t + 31, "BlessSlotPending")
                add(t + 90, "BlessSlotSuccess")
            else:
                add(t, "FinishUpgradeFailure")
        elif roll < 0.95:
            add(t, "HaTransition", from_state="standby", to_state="active")
        else:
            add(t, "HaError", reason="peer heartbeat timeout")
            add(t + 2, "HaTransition", from_state="active", to_state="fault")
    return out


def fill_demo(store: Store, account_id: str, seed: int = 7, days: int = 7) -> str:
    """Create the demo fleet; returns the first connector's id."""
    rng = random.Random(seed)
    start = float(int(clock.now() - days * 86400) // 60 * 60)
    first = ""
    for i, (site, tz) in enumerate(_SITES):
        body = {
            "device": {"serial_number": f"CTEL-{seed:02d}{i:03d}-{rng.randrange(10**6):06d}"},
            "activated": True,
            "notes": site,
            "timezone": tz,
            "interrupt_window_hour_of_day": 2,
            "interrupt_window_duration_hours": 4,
        }
        connector, _ = connectors.create_connector(store, account_id, body)
        first = first or connector.id
        tunnels = [f"{rng.randrange(16**32):032x}" for _ in range(2)]
        items = demo_events(rng, start + i * 37.0, days, tunnels)
        batch = events.parse_batch(orjson.dumps(items), "application/json", len(items))
        events.record_events(store, account_id, connector.id, batch)
    return first
