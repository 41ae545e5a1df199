"""What a simulated fleet is made of before anything happens to it: the settings
(:class:`SimConfig`), each connector's fixed identity and hardware (:class:`Identity`,
including the body that creates it), the fleet-wide software releases, and the
upgrade windows a connector's settings allow. Random choices come from
:func:`~connector_telemetry.simulate.rng.derive_rng`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connector_telemetry.simulate.rng import derive_rng

DAY = 86400.0
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MAX_CONNECTORS = 10_000
MAX_DAYS = 3660.0

#: (site name, IANA timezone); connectors take them in turn from a seed-chosen offset
SITES: tuple[tuple[str, str], ...] = (
    ("lisbon-branch", "Europe/Lisbon"),
    ("austin-dc", "America/Chicago"),
    ("osaka-store", "Asia/Tokyo"),
    ("berlin-office", "Europe/Berlin"),
    ("sao-paulo-hub", "America/Sao_Paulo"),
    ("sydney-warehouse", "Australia/Sydney"),
    ("toronto-clinic", "America/Toronto"),
    ("nairobi-branch", "Africa/Nairobi"),
    ("mumbai-office", "Asia/Kolkata"),
    ("dublin-store", "Europe/Dublin"),
    ("denver-plant", "America/Denver"),
    ("singapore-dc", "Asia/Singapore"),
)
#: (platform, virtual?, cpu counts to pick from, memory GiB to pick from, disk GiB)
PLATFORMS: tuple[tuple[str, bool, tuple[int, ...], tuple[int, ...], int], ...] = (
    ("dell-vep1425", False, (4,), (8, 16), 64),
    ("dell-vep1485", False, (8,), (16, 32), 128),
    ("virtual-kvm", True, (2, 4), (4, 8), 32),
    ("virtual-vmware", True, (4, 8), (8, 16), 64),
)


class ConfigError(ValueError):
    """A simulation setting out of range; the message names the option."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``start`` is epoch seconds; every event and snapshot of the
    fleet lies in ``[start, start + days * 86400)``."""

    start: float
    seed: int = 0
    connectors: int = 3
    days: float = 7.0
    interval: float = 300.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        if not 1 <= self.connectors <= MAX_CONNECTORS:
            raise ConfigError(
                f"--connectors must be between 1 and {MAX_CONNECTORS}, got {self.connectors!r}"
            )
        if not (math.isfinite(self.days) and 0 < self.days <= MAX_DAYS):
            raise ConfigError(f"--days must be > 0 and at most {MAX_DAYS:g}, got {self.days!r}")
        if not (math.isfinite(self.interval) and self.interval >= 1):
            raise ConfigError(f"--interval must be at least 1 second, got {self.interval!r}")
        if not (math.isfinite(self.start) and self.start >= 0):
            raise ConfigError(f"--start must be epoch seconds >= 0, got {self.start!r}")

    @property
    def end(self) -> float:
        return self.start + self.days * DAY


def default_start(now: float, days: float) -> float:
    """``now`` minus ``days``, rounded down to the minute."""
    return float(math.floor((now - days * DAY) / 60) * 60)


def serial_number(seed: int, index: int) -> str:
    """Unique per (seed, index): a second run with the same seed collides (409) on purpose."""
    return f"SIM-{seed}-{index + 1:04d}"


@dataclass(frozen=True)
class Tunnel:
    tunnel_id: str
    interface_name: str
    peer: str  # the Cloudflare end the NAT detector probes
    latency_ms: float  # typical median RTT
    weight: float  # share of the site's traffic


@dataclass(frozen=True)
class Identity:
    """A connector's fixed traits: how it is created and what hardware it runs on."""

    index: int
    serial_number: str
    site: str
    timezone: str
    notes: str
    site_id: str
    platform: str
    virtual: bool
    cpu_count: int
    memory_gib: int
    disk_gib: int
    link_bps: int  # WAN interface speed
    traffic_bps: float  # typical busy-hour download rate
    wan_ip: str
    wan_gateway: str
    lan_prefix: str  # e.g. "10.0.3", the site's LAN /24 without the host part
    tunnels: tuple[Tunnel, ...]
    ha_enabled: bool
    ha_active: bool  # the HA role it starts in
    window_hour: int
    window_hours: int
    window_days: tuple[str, ...]
    release_delay: float  # seconds after a release before this connector may take it

    def create_body(self) -> dict[str, Any]:
        """The body of ``POST /accounts/{account_id}/magic/connectors``."""
        return {
            "device": {"serial_number": self.serial_number},
            "activated": True,
            "interrupt_window_days_of_week": list(self.window_days),
            "interrupt_window_duration_hours": self.window_hours,
            "interrupt_window_hour_of_day": self.window_hour,
            "notes": self.notes,
            "timezone": self.timezone,
        }

    def upgrade_windows(self, after: float, until: float) -> list[float]:
        """Start times (epoch s) of this connector's upgrade windows in ``[after, until)``."""
        zone = ZoneInfo(self.timezone)
        day = datetime.fromtimestamp(after, zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(until, zone).date()
        out = []
        while day <= last:
            name = DAY_NAMES[(day.weekday() + 1) % 7]
            if name in self.window_days:
                local = datetime(day.year, day.month, day.day, self.window_hour, tzinfo=zone)
                at = local.timestamp()
                if after <= at < until:
                    out.append(at)
            day += timedelta(days=1)
        return out


def make_identity(seed: int, index: int) -> Identity:
    rng = derive_rng(seed, "identity", index)
    offset = derive_rng(seed, "sites").randint(0, len(SITES) - 1)
    site, timezone = SITES[(offset + index) % len(SITES)]
    if index >= len(SITES):  # a bigger fleet than there are sites: number the repeats
        site = f"{site}-{index // len(SITES) + 1}"
    platform, virtual, cpus, mems, disk = rng.choice(PLATFORMS)
    tunnels = []
    count = rng.choice((2, 2, 3, 4))
    for k in range(count):
        tunnels.append(
            Tunnel(
                tunnel_id=rng.hex(32),
                interface_name=f"xfrm{k + 1}",
                peer=f"198.51.100.{1 + (index * 7 + k) % 250}",
                latency_ms=round(rng.uniform(6, 70), 1),
                weight=rng.uniform(0.5, 1.5),
            )
        )
    ha_enabled = rng.random() < 0.4
    days = DAY_NAMES if rng.random() < 0.7 else DAY_NAMES[1:6]
    host = 2 + index % 250
    return Identity(
        index=index,
        serial_number=serial_number(seed, index),
        site=site,
        timezone=timezone,
        notes=f"{site} (simulated by ctel simulate, seed {seed}, connector {index + 1})",
        site_id=rng.hex(32),
        platform=platform,
        virtual=virtual,
        cpu_count=rng.choice(cpus),
        memory_gib=rng.choice(mems),
        disk_gib=disk,
        link_bps=rng.choice((1_000_000_000, 1_000_000_000, 10_000_000_000)),
        traffic_bps=rng.uniform(5e6, 120e6),
        wan_ip=f"203.0.113.{host}",
        wan_gateway="203.0.113.1",
        lan_prefix=f"10.{(index // 256) % 256}.{index % 256}",
        tunnels=tuple(tunnels),
        ha_enabled=ha_enabled,
        ha_active=ha_enabled and rng.random() < 0.5,
        window_hour=rng.choice((0, 1, 2, 3, 4, 22, 23)),
        window_hours=rng.choice((2, 3, 4)),
        window_days=days,
        release_delay=rng.uniform(0, 0.5) * DAY,
    )


@dataclass(frozen=True)
class Release:
    at: float  # when it becomes available (epoch s)
    version: str
    url: str


def _version(day: date, patch: int) -> str:
    return f"{day.year}.{day.month}.{patch}"


def _bundle_url(version: str) -> str:
    return f"https://updates.example.com/magic-wan-connector/{version}/connector-{version}.bundle"


def releases(config: SimConfig) -> list[Release]:
    """The fleet's software history: the version every connector starts on (released
    before ``start``), then a new release every two to four days."""
    rng = derive_rng(config.seed, "releases")
    first_at = config.start - rng.uniform(10, 40) * DAY
    first_day = datetime.fromtimestamp(first_at, UTC).date()
    patch = rng.randint(0, 3)
    out = [Release(first_at, _version(first_day, patch), _bundle_url(_version(first_day, patch)))]
    at = config.start + rng.uniform(0.5, 2.5) * DAY
    while at < config.end:
        day = datetime.fromtimestamp(at, UTC).date()
        previous = datetime.fromtimestamp(out[-1].at, UTC).date()
        patch = patch + 1 if (day.year, day.month) == (previous.year, previous.month) else 0
        version = _version(day, patch)
        out.append(Release(at, version, _bundle_url(version)))
        at += rng.uniform(2, 4) * DAY
    return out
