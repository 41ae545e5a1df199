"""The Snapshot's nested arrays (reference §4.10.1): disks, netdevs, mounts, thermals,
interfaces (with their addresses, and bonds) and routes. An empty array is left out."""

from __future__ import annotations

import ipaddress
import os

from connector_telemetry.agent import procfs as proc
from connector_telemetry.agent import sysfs as sys_
from connector_telemetry.agent.host import Fields, Host


def disks(host: Host) -> Fields:
    items = [
        {"name": d.name, "major": d.major, "minor": d.minor, **d.counters}
        for d in proc.read_diskstats(host.procfs)
    ]
    return {"disks": items} if items else {}


def netdevs(host: Host) -> Fields:
    items = [{"name": name, **c} for name, c in proc.read_net_dev(host.procfs).items()]
    return {"netdevs": items} if items else {}


def _disk_of(
    entry: proc.MountEntry, names: dict[tuple[int, int], str], devices: list[sys_.BlockDevice]
) -> sys_.BlockDevice | None:
    """The whole disk behind a mount: by device number (mountinfo, named through
    /proc/diskstats; this covers ``/dev/root``), else by the source's name (``/dev/sda1``,
    ``/dev/mapper/vg-root``; this covers btrfs, whose device numbers are anonymous)."""
    wanted = []
    if entry.device is not None and entry.device in names:
        wanted.append(names[entry.device])
    if entry.source.startswith("/dev/"):
        wanted.append(os.path.basename(entry.source))
    mapper = os.path.basename(entry.source) if entry.source.startswith("/dev/mapper/") else None
    for name in wanted:
        for dev in devices:
            if name == dev.name or name in dev.partitions:
                return dev
    for dev in devices:
        if mapper is not None and dev.dm_name == mapper:
            return dev
    return None


def mounts(host: Host) -> Fields:
    """Mounts of block devices the host lists in /sys/block (the reference's ``kind`` is
    the disk's, HDD or SSD; pseudo filesystems have none)."""
    entries = proc.read_mountinfo(host.procfs)
    if entries is None:
        entries = proc.read_mounts(host.procfs)
    devices = sys_.read_block_devices(host.sysfs)
    names = {(d.major, d.minor): d.name for d in proc.read_diskstats(host.procfs)}
    by_point: dict[str, Fields] = {}
    for entry in entries:
        dev = _disk_of(entry, names, devices)
        if dev is None or dev.rotational is None:
            continue
        item: Fields = {
            "name": entry.source,
            "mount_point": entry.mount_point,
            "file_system": entry.fstype.upper(),
            "kind": "HDD" if dev.rotational else "SSD",
            "is_read_only": "ro" in entry.options,
        }
        if dev.removable is not None:
            item["is_removable"] = dev.removable
        st = host.statvfs(entry.mount_point)
        if st is not None:
            item["total_bytes"] = st.f_blocks * st.f_frsize
            item["available_bytes"] = st.f_bavail * st.f_frsize
            item["total_inodes"] = st.f_files
            item["available_inodes"] = st.f_favail
        by_point.pop(entry.mount_point, None)  # the last mount on a point is the visible one
        by_point[entry.mount_point] = item
    return {"mounts": list(by_point.values())} if by_point else {}


def thermals(host: Host) -> Fields:
    items = []
    for zone in sys_.read_thermal_zones(host.sysfs):
        if not zone.type:
            continue
        item: Fields = {"label": zone.type}
        if zone.temp_millicelsius is not None:
            item["current_celcius"] = zone.temp_millicelsius / 1000
        if "critical" in zone.trip_points:
            item["critical_celcius"] = zone.trip_points["critical"] / 1000
        items.append(item)
    return {"thermals": items} if items else {}


def _connected(
    routes: list[proc.RouteEntry], address: ipaddress.IPv4Address
) -> proc.RouteEntry | None:
    """The most specific on-link (no gateway) route containing the address."""
    best = None
    for r in routes:
        on_link = r.gateway is None and r.network.prefixlen > 0 and address in r.network
        if on_link and (best is None or r.network.prefixlen > best.network.prefixlen):
            best = r
    return best


def interfaces(host: Host) -> Fields:
    """/sys/class/net for names, state and speed; addresses from /proc/net/if_inet6
    (IPv6, with their interface) and /proc/net/fib_trie (IPv4, assigned to the interface
    of the connected route that contains them; 127/8 to the loopback interface). An
    IPv4 address whose interface cannot be told from these files is left out."""
    ifaces = sys_.read_net_interfaces(host.sysfs)
    if not ifaces:
        return {}
    routes = proc.read_net_route(host.procfs)
    loopback = [i.name for i in ifaces if i.flags is not None and i.flags & sys_.IFF_LOOPBACK]
    addresses: dict[str, list[str]] = {i.name: [] for i in ifaces}
    for addr in proc.read_fib_trie_local_addresses(host.procfs):
        route = _connected(routes, addr)
        if route is not None:
            owner: str | None = route.interface
        elif addr.is_loopback and len(loopback) == 1:
            owner = loopback[0]
        else:
            owner = None
        if owner in addresses:
            addresses[owner].append(str(addr))
    for name, addr6 in proc.read_if_inet6(host.procfs):
        if name in addresses:
            addresses[name].append(str(addr6))
    items = []
    for i in ifaces:
        if i.operstate is None:
            continue
        item: Fields = {"name": i.name, "operstate": i.operstate.upper()}
        if i.speed_mbps is not None and i.speed_mbps > 0:
            item["speed"] = i.speed_mbps * 1_000_000
        if addresses[i.name]:
            item["ip_addresses"] = [
                {"interface_name": i.name, "ip_address": a} for a in addresses[i.name]
            ]
        items.append(item)
    bonds = []
    operstates = {i.name: i.operstate for i in ifaces}
    for name in sys_.read_bonding_masters(host.sysfs):
        state = operstates.get(name)
        if state is not None:
            bonds.append({"name": name, "status": state.upper()})
    out: Fields = {"interfaces": items} if items else {}
    if bonds:
        out["bonds"] = bonds
    return out


def routes(host: Host) -> Fields:
    """IPv4 routes; the default route is the ``breakout`` (traffic leaving the site to the
    Internet), every other route ``lan``. This host has no Magic WAN tunnels."""
    items = []
    for r in proc.read_net_route(host.procfs):
        default = r.network.prefixlen == 0
        item: Fields = {
            "destination": "default" if default else str(r.network),
            "interface_name": r.interface,
            "kind": "breakout" if default else "lan",
            "metric": r.metric,
        }
        if r.gateway is not None:
            item["gateway"] = str(r.gateway)
        items.append(item)
    return {"routes": items} if items else {}
