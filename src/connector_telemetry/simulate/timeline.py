"""One connector's life as lifecycle events, and the states the snapshots follow.

:func:`build_timeline` plays a connector's history in three passes, each drawing
from its own random stream: the boot and the upgrades (which reboot it and block
other work around them), then the periodic work (rekeys per tunnel, crypt-key and
PKI rotations, reconciles) outside those blocked spans, then HA (roles, failovers,
faults, leaving and rejoining around reboots). The events are then ordered by time
and numbered: ``n`` counts the events that share a ``t`` (0 for most), and ``v`` is
the version running at ``t``, which changes only when the connector comes back from
a successful upgrade.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from connector_telemetry.simulate.plan import DAY, Identity, Release, SimConfig
from connector_telemetry.simulate.rng import Rng, derive_rng

HA_VALUES = {"disabled": 0, "active": 1, "standby": 2, "stopped": 3, "fault": 4}
_HA_ERRORS = ("peer heartbeat timeout", "unexpected state from peer", "vrrp advert mismatch")


@dataclass(frozen=True)
class Boot:
    boot_time: float  # the kernel's boot time (epoch s)
    init_t: float  # the connector process's Init
    version: str
    slot: int  # A/B root slot: flips on every successful upgrade


@dataclass
class Timeline:
    events: list[dict[str, Any]]
    boots: list[Boot]
    down: list[tuple[float, float]]  # (Leave, Init + settle): no snapshots in between
    ha: list[tuple[float, str]]  # HA state change points, time-ordered
    snapshot_times: list[float] = field(default_factory=list)


class _Events:
    def __init__(self) -> None:
        self.raw: list[tuple[float, int, dict[str, Any]]] = []

    def add(self, t: float, kind: str, **payload: Any) -> None:
        self.raw.append((round(t, 3), len(self.raw), {"k": kind, **payload}))


def _inside(spans: list[tuple[float, float]], t: float) -> bool:
    return any(lo <= t <= hi for lo, hi in spans)


def _boot_sequence(ev: _Events, rng: Rng, ident: Identity, t: float, upgraded: bool) -> float:
    """Init, attestation, reconcile, tunnels; after an upgrade, the slot blessing.
    Returns when the sequence is over."""
    ev.add(t, "Init")
    if upgraded:
        ev.add(t + rng.uniform(0.1, 0.5), "BlessSlotPending")
    t += rng.uniform(0.6, 1.5)
    ev.add(t, "StartAttestation")
    t += rng.uniform(0.5, 3)
    if rng.random() < 0.03:  # rare: the first attestation fails and is retried
        ev.add(t, "FinishAttestationFailure")
        t += rng.uniform(30, 90)
        ev.add(t, "StartAttestation")
        t += rng.uniform(0.5, 3)
    ev.add(t, "FinishAttestationSuccess")
    t += rng.uniform(0.2, 1)
    ev.add(t, "Reconcile")
    t += rng.uniform(0.5, 2)
    ev.add(t, "ConfigureCloudflaredTunnel")
    for tunnel in ident.tunnels:
        t += rng.uniform(0.1, 0.8)
        ev.add(t, "RekeyInstallBoth", tunnel_id=tunnel.tunnel_id)
    if upgraded:
        t += rng.uniform(60, 180)
        ev.add(t, "BlessSlotSuccess")
    return t


def _upgrades(
    ev: _Events,
    rng: Rng,
    ident: Identity,
    config: SimConfig,
    fleet_releases: list[Release],
    boots: list[Boot],
    down: list[tuple[float, float]],
    blocked: list[tuple[float, float]],
) -> None:
    current = 0  # index into fleet_releases
    for window in ident.upgrade_windows(boots[0].init_t + 3600, config.end - 3 * 3600):
        ready = [
            i
            for i, r in enumerate(fleet_releases)
            if i > current and r.at + ident.release_delay <= window
        ]
        if not ready:
            continue
        target = fleet_releases[ready[-1]]
        t = window + rng.uniform(0, ident.window_hours * 1800)
        if blocked and t < blocked[-1][1]:
            continue
        ev.add(t, "StartUpgrade", url=target.url)
        begin = t
        if rng.random() < 0.08:  # rare: the upgrade fails; retried in a later window
            ev.add(t + rng.uniform(30, 400), "FinishUpgradeFailure")
            blocked.append((begin - 900, t + 1800))
            continue
        t += rng.uniform(60, 420)
        ev.add(t, "FinishUpgradeSuccess")
        leave = t + rng.uniform(3, 6)
        ev.add(leave, "Leave")
        boot_time = leave + rng.uniform(10, 30)
        init_t = boot_time + rng.uniform(20, 45)
        current = ready[-1]
        boots.append(Boot(boot_time, round(init_t, 3), target.version, len(boots) % 2))
        done = _boot_sequence(ev, rng, ident, init_t, upgraded=True)
        down.append((round(leave, 3), init_t + 10))
        blocked.append((begin - 900, done + 900))


def _periodic(
    rng: Rng,
    first: float,
    every: float,
    jitter: float,
    until: float,
    blocked: list[tuple[float, float]],
) -> list[float]:
    """Start times of a periodic job: roughly every ``every`` seconds, none inside a
    blocked span (an upgrade and its reboot)."""
    out = []
    t = first
    while t < until:
        if not _inside(blocked, t):
            out.append(t)
        t += every + rng.uniform(-jitter, jitter)
    return out


def _work(
    ev: _Events,
    rng: Rng,
    ident: Identity,
    t0: float,
    until: float,
    blocked: list[tuple[float, float]],
) -> None:
    for tunnel in ident.tunnels:
        every = rng.uniform(3.5, 4.5) * 3600
        for t in _periodic(rng, t0 + rng.uniform(0.2, 1) * every, every, 600, until, blocked):
            tid = tunnel.tunnel_id
            ev.add(t, "RekeyStart", tunnel_id=tid)
            if rng.random() < 0.01:  # rare: an unexpected key; start over from scratch
                t += rng.uniform(1, 10)
                ev.add(t, "RekeyReset", tunnel_id=tid)
                ev.add(t + rng.uniform(1, 5), "RekeyInstallBoth", tunnel_id=tid)
                continue
            if rng.random() < 0.04:
                t += rng.uniform(2, 20)
                ev.add(t, "RekeyRestart", tunnel_id=tid)
            t += rng.uniform(1, 15)
            ev.add(t, "RekeyAdvance", tunnel_id=tid)
            ev.add(t + rng.uniform(5, 60), "RekeyComplete", tunnel_id=tid)
    jobs = (
        ("RotateCryptKey", DAY, 1800, 0.03),
        ("RotatePki", 3 * DAY, 3 * 3600, 0.03),
    )
    for name, every, jitter, failure in jobs:
        for t in _periodic(rng, t0 + rng.uniform(0.1, 1) * every, every, jitter, until, blocked):
            ev.add(t, "Start" + name)
            t += rng.uniform(0.2, 4)
            if rng.random() < failure:  # rare: fails, retried a little later
                ev.add(t, f"Finish{name}Failure")
                t += rng.uniform(600, 1800)
                ev.add(t, "Start" + name)
                t += rng.uniform(0.2, 4)
            ev.add(t, f"Finish{name}Success")
    for t in _periodic(rng, t0 + rng.uniform(1, 3) * 3600, 3 * 3600, 900, until, blocked):
        ev.add(t, "Reconcile")


def _ha(
    ev: _Events,
    rng: Rng,
    ident: Identity,
    boots: list[Boot],
    down: list[tuple[float, float]],
    until: float,
    blocked: list[tuple[float, float]],
) -> list[tuple[float, str]]:
    if not ident.ha_enabled:
        return [(0.0, "disabled")]
    changes: list[tuple[float, str]] = [(0.0, "stopped")]
    role = "active" if ident.ha_active else "standby"

    def move(t: float, to: str, **extra: Any) -> None:
        ev.add(t, "HaTransition", from_state=changes[-1][1], to_state=to, **extra)
        changes.append((round(t, 3), to))

    def join(t: float) -> None:
        ev.add(t + rng.uniform(0.5, 1.5), "HaInit")
        t += rng.uniform(2, 5)
        move(t, "standby")
        if role == "active":
            move(t + rng.uniform(3, 10), "active")

    leaves = [lo for lo, _ in down]
    incidents: list[float] = []
    t = boots[0].init_t + rng.expovariate(1 / (2.5 * DAY))
    while t < until:
        if not _inside(blocked, t):
            incidents.append(t)
        t += rng.expovariate(1 / (2.5 * DAY))
    join(boots[0].init_t)
    plan = [(b.init_t, "join") for b in boots[1:]] + [(lt, "leave") for lt in leaves]
    plan = sorted(plan + [(t, "incident") for t in incidents])
    for t, what in plan:
        if what == "leave":
            move(t - rng.uniform(1, 2), "stopped")
            ev.add(t - 0.5, "HaLeave")
        elif what == "join":
            join(t)
        elif t < changes[-1][0] + 60:
            continue  # still settling from the last change
        elif rng.random() < 0.3:  # a fault: recovers as standby, the peer took over
            ev.add(t, "HaError", reason=rng.choice(_HA_ERRORS))
            move(t + rng.uniform(1, 3), "fault")
            role = "standby"
            move(t + rng.uniform(120, 900), role)
        else:  # a failover, either way
            role = "standby" if role == "active" else "active"
            move(t, role)
    return changes


def build_timeline(config: SimConfig, ident: Identity, fleet_releases: list[Release]) -> Timeline:
    rng = derive_rng(config.seed, "boot", ident.index)
    t0 = config.start + rng.uniform(0, 90)
    ev = _Events()
    boot_time = t0 - rng.uniform(20, 45)
    boots = [Boot(max(boot_time, 0.0), round(t0, 3), fleet_releases[0].version, 0)]
    done = _boot_sequence(ev, rng, ident, t0, upgraded=False)
    down: list[tuple[float, float]] = []
    blocked: list[tuple[float, float]] = [(t0 - 900, done + 900)]
    _upgrades(ev, rng, ident, config, fleet_releases, boots, down, blocked)
    until = config.end - 1800  # every episode is over before the end
    _work(ev, derive_rng(config.seed, "work", ident.index), ident, t0, until, blocked)
    ha = _ha(ev, derive_rng(config.seed, "ha", ident.index), ident, boots, down, until, blocked)
    ha.sort(key=lambda c: c[0])

    ev.raw.sort(key=lambda r: (r[0], r[1]))
    starts = [b.init_t for b in boots]
    events = []
    previous_t, n = -1.0, 0
    for t, _, e in ev.raw:
        n = n + 1 if t == previous_t else 0
        previous_t = t
        version = boots[max(bisect.bisect_right(starts, t) - 1, 0)].version
        events.append({"e": e, "t": t, "n": n, "v": version})
    timeline = Timeline(events, boots, down, ha)
    timeline.snapshot_times = _snapshot_times(config, ident, t0, down)
    return timeline


def _snapshot_times(
    config: SimConfig, ident: Identity, t0: float, down: list[tuple[float, float]]
) -> list[float]:
    rng = derive_rng(config.seed, "snapshot-times", ident.index)
    spread = min(2.0, config.interval * 0.05)
    out: list[float] = []
    k = 0
    base = t0 + min(20.0, config.interval / 2)
    while True:
        t = round(base + k * config.interval + rng.uniform(0, spread), 3)
        if t >= config.end:
            return out
        if not _inside(down, t) and (not out or t > out[-1]):
            out.append(t)
        k += 1
