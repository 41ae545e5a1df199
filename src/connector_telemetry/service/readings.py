"""What the dashboard reads out of a snapshot: the few fields its charts and the fleet
summary need, decoded by msgspec straight from the stored JSON (every other field is
skipped in C), and the one rule for turning counters into rates.

Counters (CPU times, interface bytes) only grow while a host is up and start again from
zero when it boots. The increase between two readings is ``new - old``; when ``new <
old`` the counter was reset in between, and the increase is ``new`` itself (all of it
was counted since the reset), as Prometheus's ``rate()`` does. A rate is never negative.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Mount(msgspec.Struct, frozen=True):
    mount_point: str = ""
    total_bytes: float | None = None
    available_bytes: float | None = None
    is_read_only: bool | None = None


class Netdev(msgspec.Struct, frozen=True):
    name: str = ""
    recv_bytes: float | None = None
    sent_bytes: float | None = None


class Tunnel(msgspec.Struct, frozen=True):
    tunnel_id: str = ""
    interface_name: str = ""
    health_state: str = ""
    health_value: float | None = None


class Thermal(msgspec.Struct, frozen=True):
    label: str = ""
    current_celcius: float | None = None


class Reading(msgspec.Struct, frozen=True):
    """One snapshot, as far as the dashboard is concerned."""

    t: float
    cpu_count: float | None = None
    cpu_time_user_ms: float | None = None
    cpu_time_nice_ms: float | None = None
    cpu_time_system_ms: float | None = None
    cpu_time_idle_ms: float | None = None
    cpu_time_iowait_ms: float | None = None
    cpu_time_irq_ms: float | None = None
    cpu_time_softirq_ms: float | None = None
    cpu_time_steal_ms: float | None = None
    load_average_1m: float | None = None
    load_average_5m: float | None = None
    load_average_15m: float | None = None
    memory_total_bytes: float | None = None
    memory_available_bytes: float | None = None
    mounts: list[Mount] | None = None
    netdevs: list[Netdev] | None = None
    tunnels: list[Tunnel] | None = None
    thermals: list[Thermal] | None = None


_decode_reading = msgspec.json.Decoder(Reading).decode

#: CPU time spent working: everything but idle and iowait (guest time is already in user).
_BUSY = (
    "cpu_time_user_ms",
    "cpu_time_nice_ms",
    "cpu_time_system_ms",
    "cpu_time_irq_ms",
    "cpu_time_softirq_ms",
    "cpu_time_steal_ms",
)
_IDLE = ("cpu_time_idle_ms", "cpu_time_iowait_ms")


def read(doc: bytes) -> Reading:
    """The dashboard's fields of a stored snapshot document."""
    return _decode_reading(doc)


def cpu_counters(r: Reading) -> tuple[float, float] | None:
    """``(busy, total)`` CPU milliseconds since boot; None without CPU times."""
    busy = [getattr(r, name) for name in _BUSY]
    idle = [getattr(r, name) for name in _IDLE]
    if all(v is None for v in busy) or all(v is None for v in idle):
        return None
    worked = sum(v for v in busy if v is not None)
    return worked, worked + sum(v for v in idle if v is not None)


def increase(old: float, new: float) -> float:
    """How much a counter grew from ``old`` to ``new``, across a reset (see the module)."""
    return new - old if new >= old else new


def cpu_use(old: tuple[float, float] | None, new: tuple[float, float] | None) -> float | None:
    """The busy fraction of CPU time between two readings' ``cpu_counters`` (0..1).

    A reset of either counter (a reboot) means both restarted: the fraction is then the
    one since boot."""
    if old is None or new is None:
        return None
    if new[0] < old[0] or new[1] < old[1]:
        busy, total = new
    else:
        busy, total = new[0] - old[0], new[1] - old[1]
    if total <= 0:
        return None
    return min(1.0, max(0.0, busy / total))


def memory_used(r: Reading) -> float | None:
    """Memory in use (total minus available), as a fraction of the total."""
    total, available = r.memory_total_bytes, r.memory_available_bytes
    if not total or available is None:
        return None
    return min(1.0, max(0.0, (total - available) / total))


def mount_used(m: Mount) -> float | None:
    """The used fraction of a writable mount (a read-only image is always "full")."""
    if m.is_read_only or not m.total_bytes or m.available_bytes is None:
        return None
    return min(1.0, max(0.0, (m.total_bytes - m.available_bytes) / m.total_bytes))


def fullest_mount(r: Reading) -> tuple[str, float] | None:
    """``(mount point, used fraction)`` of the fullest writable mount."""
    best: tuple[str, float] | None = None
    for m in r.mounts or ():
        used = mount_used(m)
        if used is not None and (best is None or used > best[1]):
            best = (m.mount_point, used)
    return best


#: Tunnel states that carry traffic (degraded: up, but losing probes).
TUNNEL_UP = frozenset(("healthy", "degraded"))


def tunnel_counts(r: Reading) -> dict[str, int] | None:
    if r.tunnels is None:
        return None
    up = sum(1 for tun in r.tunnels if tun.health_state in TUNNEL_UP)
    degraded = sum(1 for tun in r.tunnels if tun.health_state == "degraded")
    return {"up": up, "degraded": degraded, "total": len(r.tunnels)}


def as_json_number(value: Any) -> Any:
    """Round floats to what a chart can show (keeps payloads small)."""
    if isinstance(value, float):
        return round(value, 6)
    return value
