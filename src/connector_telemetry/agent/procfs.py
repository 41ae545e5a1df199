"""Readers for /proc, one function per file, psutil style.

Every function takes the procfs root (``"/proc"`` on a host, a fixture directory in
tests) and returns the file's content parsed in the kernel's own terms (the names
the file uses); :mod:`.scalars` and :mod:`.arrays` map them to the reference's field
names. A file the host does not have gives ``None`` (or an empty result), never made-up
values.
Nothing here knows about HTTP, the spool or the snapshot's wire names.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

#: errno values that mean "this host has no such file or value", not "reading failed":
#: a missing file, or a sysfs attribute the driver cannot report (speed of a down link).
_ABSENT = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EINVAL, errno.ENODATA, errno.ENODEV, errno.ENXIO}
)

Number = int | float


def read_text(path: str) -> str | None:
    """The file's text, or None when the host does not have it. Other errors raise."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        if e.errno in _ABSENT:
            return None
        raise


def _num(text: str) -> Number:
    """A kernel number: ``"12"`` -> 12, ``"0.27"`` -> 0.27."""
    try:
        return int(text)
    except ValueError:
        return float(text)


# -- /proc/stat -------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    cpu_ticks: tuple[int, ...]  # the aggregate "cpu" line, USER_HZ ticks, as many as listed
    cpu_count: int  # number of "cpuN" lines: the logical CPUs online
    counters: dict[str, int]  # ctxt, btime, processes, procs_running, procs_blocked


def read_stat(procfs: str) -> Stat | None:
    text = read_text(os.path.join(procfs, "stat"))
    if text is None:
        return None
    ticks: tuple[int, ...] = ()
    count = 0
    counters: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "cpu":
            ticks = tuple(int(p) for p in parts[1:])
        elif key.startswith("cpu") and key[3:].isdigit():
            count += 1
        elif key in ("ctxt", "btime", "processes", "procs_running", "procs_blocked"):
            counters[key] = int(parts[1])
    return Stat(ticks, count, counters)


# -- /proc/pressure/{cpu,io,memory} -----------------------------------------------------


def read_pressure(procfs: str, resource: str) -> dict[str, dict[str, Number]]:
    """``{"some": {"avg10": .., "avg60": .., "avg300": .., "total": ..}, "full": {...}}``;
    empty when the kernel has no PSI (no /proc/pressure)."""
    text = read_text(os.path.join(procfs, "pressure", resource))
    out: dict[str, dict[str, Number]] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        out[parts[0]] = {k: _num(v) for k, v in (p.split("=", 1) for p in parts[1:])}
    return out


# -- /proc/loadavg -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadAvg:
    avg1: float
    avg5: float
    avg15: float
    runnable: int  # scheduling entities currently runnable
    entities: int  # scheduling entities in existence


def read_loadavg(procfs: str) -> LoadAvg | None:
    text = read_text(os.path.join(procfs, "loadavg"))
    if text is None:
        return None
    a1, a5, a15, entities = text.split()[:4]
    runnable, total = entities.split("/")
    return LoadAvg(float(a1), float(a5), float(a15), int(runnable), int(total))


# -- /proc/meminfo -------------------------------------------------------------------------


def read_meminfo(procfs: str) -> dict[str, int]:
    """Every line: values with a ``kB`` unit converted to bytes, bare counts as they are
    (``HugePages_Total``)."""
    text = read_text(os.path.join(procfs, "meminfo"))
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields:
            continue
        value = int(fields[0])
        if len(fields) > 1 and fields[1] == "kB":
            value *= 1024
        out[key.strip()] = value
    return out


# -- /proc/uptime --------------------------------------------------------------------------


def read_uptime(procfs: str) -> tuple[float, float] | None:
    """(seconds since boot, idle seconds summed over all CPUs)."""
    text = read_text(os.path.join(procfs, "uptime"))
    if text is None:
        return None
    up, idle = text.split()[:2]
    return float(up), float(idle)


# -- /proc/diskstats -------------------------------------------------------------------------

#: the columns after major, minor and name, in kernel order (Documentation/admin-guide/
#: iostats.rst); 4.18 added the discard four, 5.5 the flush two.
DISKSTAT_COLUMNS = (
    "reads",
    "merged",
    "sectors_read",
    "time_reading_ms",
    "writes",
    "writes_merged",
    "sectors_written",
    "time_writing_ms",
    "in_progress",
    "time_in_progress_ms",
    "weighted_time_in_progress_ms",
    "discards",
    "discards_merged",
    "sectors_discarded",
    "time_discarding_ms",
    "flushes",
    "time_flushing_ms",
)


@dataclass(frozen=True)
class DiskStat:
    major: int
    minor: int
    name: str
    counters: dict[str, int]  # DISKSTAT_COLUMNS, as many as this kernel prints


def read_diskstats(procfs: str) -> list[DiskStat]:
    text = read_text(os.path.join(procfs, "diskstats"))
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        values = [int(p) for p in parts[3:]]
        out.append(
            DiskStat(
                int(parts[0]),
                int(parts[1]),
                parts[2],
                dict(zip(DISKSTAT_COLUMNS, values, strict=False)),
            )
        )
    return out


# -- /proc/net/dev ---------------------------------------------------------------------------

NETDEV_COLUMNS = (
    "recv_bytes",
    "recv_packets",
    "recv_errs",
    "recv_drop",
    "recv_fifo",
    "recv_frame",
    "recv_compressed",
    "recv_multicast",
    "sent_bytes",
    "sent_packets",
    "sent_errs",
    "sent_drop",
    "sent_fifo",
    "sent_colls",
    "sent_carrier",
    "sent_compressed",
)


def read_net_dev(procfs: str) -> dict[str, dict[str, int]]:
    """Interface name -> its 16 counters (receive then transmit, kernel order)."""
    text = read_text(os.path.join(procfs, "net", "dev"))
    out: dict[str, dict[str, int]] = {}
    for line in (text or "").splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if sep and len(values) >= len(NETDEV_COLUMNS):
            out[name.strip()] = dict(zip(NETDEV_COLUMNS, (int(v) for v in values), strict=False))
    return out


# -- /proc/net/snmp --------------------------------------------------------------------------


def read_net_snmp(procfs: str) -> dict[str, dict[str, int]]:
    """Section (``Ip``, ``Icmp``, ``Tcp``, ``Udp``, ...) -> counter name -> value. Each
    section is a header line followed by a value line with the same prefix."""
    text = read_text(os.path.join(procfs, "net", "snmp"))
    lines = (text or "").splitlines()
    out: dict[str, dict[str, int]] = {}
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        section, _, names = header.partition(":")
        vsection, _, nums = values.partition(":")
        if section != vsection:
            raise ValueError(f"net/snmp: header {section!r} followed by {vsection!r}")
        out[section] = dict(zip(names.split(), (int(v) for v in nums.split()), strict=True))
    return out


# -- /proc/self/mountinfo and /proc/mounts -------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    source: str
    mount_point: str
    fstype: str
    options: tuple[str, ...]  # the mount's own and its superblock's
    device: tuple[int, int] | None = None  # (major, minor): from mountinfo only


def _unescape(field: str) -> str:
    # both files write space, tab, newline and backslash as \040 \011 \012 \134
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def read_mountinfo(procfs: str) -> list[MountEntry] | None:
    """The mounts with each one's device number (which names the disk even when the
    source is ``/dev/root`` or a by-uuid link); None without mountinfo. PID 1's view
    first: the host's mounts, not the agent's own namespace (a systemd unit with
    ProtectSystem= would otherwise show every filesystem read-only)."""
    text = read_text(os.path.join(procfs, "1", "mountinfo"))
    if text is None:
        text = read_text(os.path.join(procfs, "self", "mountinfo"))
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 3:
            continue
        major, minor = fields[2].split(":")
        out.append(
            MountEntry(
                _unescape(rest[1]),
                _unescape(fields[4]),
                rest[0],
                tuple(fields[5].split(",")) + tuple(rest[2].split(",")),
                (int(major), int(minor)),
            )
        )
    return out


def read_mounts(procfs: str) -> list[MountEntry]:
    """/proc/mounts, for kernels or sandboxes without /proc/self/mountinfo."""
    text = read_text(os.path.join(procfs, "mounts"))
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append(
                MountEntry(
                    _unescape(parts[0]),
                    _unescape(parts[1]),
                    parts[2],
                    tuple(parts[3].split(",")),
                )
            )
    return out


# -- /proc/net/route -------------------------------------------------------------------------

RTF_UP = 0x1
RTF_GATEWAY = 0x2


def _ipv4(hex_word: str) -> ipaddress.IPv4Address:
    # the kernel prints the network-order address as a native-endian 32-bit word
    return ipaddress.IPv4Address(socket.inet_ntoa(struct.pack("=I", int(hex_word, 16))))


@dataclass(frozen=True)
class RouteEntry:
    interface: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None  # set only for RTF_GATEWAY routes
    metric: int


def read_net_route(procfs: str) -> list[RouteEntry]:
    """IPv4 routes of the main table that are up."""
    text = read_text(os.path.join(procfs, "net", "route"))
    out = []
    for line in (text or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        iface, dest, gateway, flags, metric, mask = (
            parts[0],
            parts[1],
            parts[2],
            int(parts[3], 16),
            int(parts[6]),
            parts[7],
        )
        if not flags & RTF_UP:
            continue
        network = ipaddress.IPv4Network(f"{_ipv4(dest)}/{_ipv4(mask)}", strict=False)
        gw = _ipv4(gateway) if flags & RTF_GATEWAY else None
        out.append(RouteEntry(iface, network, gw, metric))
    return out


# -- /proc/net/fib_trie and /proc/net/if_inet6 (interface addresses) --------------------------


def read_fib_trie_local_addresses(procfs: str) -> list[ipaddress.IPv4Address]:
    """The host's own IPv4 addresses: the leaves marked ``/32 host LOCAL``. fib_trie does
    not say which interface holds them; :func:`.arrays.interfaces` matches them to the
    connected routes of /proc/net/route."""
    text = read_text(os.path.join(procfs, "net", "fib_trie"))
    found: dict[ipaddress.IPv4Address, None] = {}
    leaf: str | None = None
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("|-- "):
            leaf = stripped[4:]
        elif leaf is not None and stripped.startswith("/32 host LOCAL"):
            found[ipaddress.IPv4Address(leaf)] = None
    return list(found)


def read_if_inet6(procfs: str) -> list[tuple[str, ipaddress.IPv6Address]]:
    """(interface name, address) for every IPv6 address."""
    text = read_text(os.path.join(procfs, "net", "if_inet6"))
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 6:
            out.append((parts[5], ipaddress.IPv6Address(bytes.fromhex(parts[0]))))
    return out
