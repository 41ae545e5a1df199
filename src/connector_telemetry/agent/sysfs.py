"""Readers for /sys, one function per sysfs class, psutil style.

Each function takes the sysfs root (``"/sys"`` on a host, a fixture directory in
tests) and returns what the host exposes, in the kernel's units; absent entries are
left out. Only regular files are read and directories listed, so a fixture tree with
the files copied (not the symlinks sysfs is made of) reads the same as the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from connector_telemetry.agent.procfs import read_text

IFF_LOOPBACK = 0x8


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _attr(path: str) -> str | None:
    text = read_text(path)
    return None if text is None else text.strip()


def _int_attr(path: str, base: int = 10) -> int | None:
    text = _attr(path)
    if text is None or text == "":
        return None
    return int(text, base)


# -- /sys/class/net ----------------------------------------------------------------------


@dataclass(frozen=True)
class NetInterface:
    name: str
    operstate: str | None  # as the kernel spells it: "up", "down", "unknown", ...
    speed_mbps: int | None  # None when the driver cannot say (virtual, down); may be -1
    flags: int | None  # IFF_* bits


def read_net_interfaces(sysfs: str) -> list[NetInterface]:
    base = os.path.join(sysfs, "class", "net")
    out = []
    for name in _listdir(base):
        path = os.path.join(base, name)
        if not os.path.isdir(path):  # bonding_masters is a file in the same directory
            continue
        out.append(
            NetInterface(
                name,
                _attr(os.path.join(path, "operstate")),
                _int_attr(os.path.join(path, "speed")),
                _int_attr(os.path.join(path, "flags"), 16),
            )
        )
    return out


def read_bonding_masters(sysfs: str) -> list[str]:
    """Names of the bonding interfaces (present only when the bonding driver is loaded)."""
    text = _attr(os.path.join(sysfs, "class", "net", "bonding_masters"))
    return text.split() if text else []


# -- /sys/class/thermal ------------------------------------------------------------------


@dataclass(frozen=True)
class ThermalZone:
    zone: str  # thermal_zoneN
    type: str | None
    temp_millicelsius: int | None
    trip_points: dict[str, int] = field(default_factory=dict)  # trip type -> millidegrees


def read_thermal_zones(sysfs: str) -> list[ThermalZone]:
    base = os.path.join(sysfs, "class", "thermal")
    out = []
    for zone in _listdir(base):
        if not zone.startswith("thermal_zone"):
            continue
        path = os.path.join(base, zone)
        trips: dict[str, int] = {}
        for entry in _listdir(path):
            if entry.startswith("trip_point_") and entry.endswith("_type"):
                kind = _attr(os.path.join(path, entry))
                temp = _int_attr(os.path.join(path, entry[: -len("type")] + "temp"))
                # the lowest temperature of a kind is the one that acts first
                if kind and temp is not None and (kind not in trips or temp < trips[kind]):
                    trips[kind] = temp
        out.append(
            ThermalZone(
                zone,
                _attr(os.path.join(path, "type")),
                _int_attr(os.path.join(path, "temp")),
                trips,
            )
        )
    return out


# -- /sys/block ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockDevice:
    name: str  # the whole disk, e.g. "sda" (partitions are listed in `partitions`)
    rotational: bool | None
    removable: bool | None
    dm_name: str | None  # device-mapper name (/dev/mapper/<dm_name>) for dm-N
    partitions: tuple[str, ...]


def _flag(path: str) -> bool | None:
    value = _attr(path)
    return None if value is None else value == "1"


def read_block_devices(sysfs: str) -> list[BlockDevice]:
    base = os.path.join(sysfs, "block")
    out = []
    for name in _listdir(base):
        path = os.path.join(base, name)
        parts = tuple(
            p
            for p in _listdir(path)
            if p.startswith(name) and os.path.exists(os.path.join(path, p, "partition"))
        )
        out.append(
            BlockDevice(
                name,
                _flag(os.path.join(path, "queue", "rotational")),
                _flag(os.path.join(path, "removable")),
                _attr(os.path.join(path, "dm", "name")),
                parts,
            )
        )
    return out
