"""A host's telemetry as a Snapshot object (reference §4.10.1).

:func:`collect` calls the /proc and /sys readers and maps what they found to the
reference's field names, one section per reader. A section whose file the host does
not have contributes nothing; a section whose reader fails (unreadable file,
unexpected format) contributes nothing either and is counted in ``failures``, so one
odd file never costs the whole snapshot. The core fields (``t``, ``v``, the
``count_*`` counters) belong to the agent and are added by the caller.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from connector_telemetry.agent import procfs as proc
from connector_telemetry.agent import sysfs as sys_

log = logging.getLogger(__name__)

Fields = dict[str, Any]


class StatvfsResult(Protocol):
    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...
    @property
    def f_files(self) -> int: ...
    @property
    def f_favail(self) -> int: ...


def _host_statvfs(path: str) -> StatvfsResult | None:
    try:
        return os.statvfs(path)
    except OSError:
        return None


@dataclass(frozen=True)
class Host:
    """Where to read: the procfs and sysfs roots, how to statvfs a mount point (None when
    it cannot be), and the USER_HZ tick rate of /proc/stat. Tests point these at a
    fixture tree."""

    procfs: str = "/proc"
    sysfs: str = "/sys"
    statvfs: Callable[[str], StatvfsResult | None] = _host_statvfs
    clock_ticks: int = 0  # 0: os.sysconf("SC_CLK_TCK")

    @property
    def hz(self) -> int:
        return self.clock_ticks or os.sysconf("SC_CLK_TCK")


def _whole(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# -- scalar sections -----------------------------------------------------------------------

#: the columns of the "cpu" line of /proc/stat, in kernel order
_CPU_TIMES = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)


def cpu_and_kernel(host: Host) -> Fields:
    stat = proc.read_stat(host.procfs)
    if stat is None:
        return {}
    out: Fields = {}
    if stat.cpu_count:
        out["cpu_count"] = stat.cpu_count
    for name, ticks in zip(_CPU_TIMES, stat.cpu_ticks, strict=False):
        out[f"cpu_time_{name}_ms"] = _whole(ticks * 1000 / host.hz)
    names = {
        "btime": "kernel_btime",
        "ctxt": "kernel_ctxt",
        "processes": "kernel_processes",
        "procs_running": "kernel_processes_running",
        "procs_blocked": "kernel_processes_blocked",
    }
    for key, field in names.items():
        if key in stat.counters:
            out[field] = stat.counters[key]
    if "btime" in stat.counters:
        out["system_boot_time_s"] = stat.counters["btime"]
    return out


def pressure(host: Host) -> Fields:
    out: Fields = {}
    # cpu has only "some" in the reference (kernels since 5.13 also print a "full" line)
    wanted = {"cpu": {"some": "cpu_pressure"}}
    for resource in ("io", "memory"):
        wanted[resource] = {kind: f"{resource}_pressure_{kind}" for kind in ("some", "full")}
    for resource, kinds in wanted.items():
        lines = proc.read_pressure(host.procfs, resource)
        for kind, prefix in kinds.items():
            values = lines.get(kind, {})
            for key, suffix in (("avg10", "10s"), ("avg60", "60s"), ("avg300", "300s")):
                if key in values:
                    out[f"{prefix}_{suffix}"] = values[key]
            if "total" in values:
                out[f"{prefix}_total_us"] = values["total"]
    return out


def load(host: Host) -> Fields:
    avg = proc.read_loadavg(host.procfs)
    if avg is None:
        return {}
    return {
        "load_average_1m": avg.avg1,
        "load_average_5m": avg.avg5,
        "load_average_15m": avg.avg15,
        "load_average_cur": avg.runnable,
        "load_average_max": avg.entities,
    }


#: /proc/meminfo line -> snapshot field (values already in bytes, or counts)
MEMINFO_FIELDS = {
    "MemTotal": "memory_total_bytes",
    "MemFree": "memory_free_bytes",
    "MemAvailable": "memory_available_bytes",
    "Buffers": "memory_buffers_bytes",
    "Cached": "memory_cached_bytes",
    "SwapCached": "memory_swap_cached_bytes",
    "Active": "memory_active_bytes",
    "Inactive": "memory_inactive_bytes",
    "HighTotal": "memory_high_total_bytes",
    "HighFree": "memory_high_free_bytes",
    "LowTotal": "memory_low_total_bytes",
    "LowFree": "memory_low_free_bytes",
    "SwapTotal": "memory_swap_total_bytes",
    "SwapFree": "memory_swap_free_bytes",
    "Zswap": "memory_z_swap_bytes",
    "Zswapped": "memory_z_swapped_bytes",
    "Dirty": "memory_dirty_bytes",
    "Writeback": "memory_writeback_bytes",
    "AnonPages": "memory_anon_pages_bytes",
    "Mapped": "memory_mapped_bytes",
    "Shmem": "memory_shmem_bytes",
    "KReclaimable": "memory_k_reclaimable_bytes",
    "Slab": "memory_slab_bytes",
    "SReclaimable": "memory_s_reclaimable_bytes",
    "SUnreclaim": "memory_s_unreclaim_bytes",
    "KernelStack": "memory_kernel_stack_bytes",
    "PageTables": "memory_page_tables_bytes",
    "SecPageTables": "memory_secondary_page_tables_bytes",
    "Bounce": "memory_bounce_bytes",
    "WritebackTmp": "memory_writeback_tmp_bytes",
    "CommitLimit": "memory_commit_limit_bytes",
    "Committed_AS": "memory_committed_as_bytes",
    "VmallocTotal": "memory_vmalloc_total_bytes",
    "VmallocUsed": "memory_vmalloc_used_bytes",
    "VmallocChunk": "memory_vmalloc_chunk_bytes",
    "Percpu": "memory_per_cpu_bytes",
    "AnonHugePages": "memory_anon_hugepages_bytes",
    "ShmemHugePages": "memory_shmem_hugepages_bytes",
    "ShmemPmdMapped": "memory_shmem_pmd_mapped_bytes",
    "CmaTotal": "memory_cma_total_bytes",
    "CmaFree": "memory_cma_free_bytes",
    "HugePages_Total": "memory_hugepages_total",
    "HugePages_Free": "memory_hugepages_free",
    "HugePages_Rsvd": "memory_hugepages_rsvd",
    "HugePages_Surp": "memory_hugepages_surp",
    "Hugepagesize": "memory_hugepagesize_bytes",
}


def memory(host: Host) -> Fields:
    info = proc.read_meminfo(host.procfs)
    return {field: info[key] for key, field in MEMINFO_FIELDS.items() if key in info}


def uptime(host: Host) -> Fields:
    up = proc.read_uptime(host.procfs)
    if up is None:
        return {}
    return {"uptime_total_ms": round(up[0] * 1000), "uptime_idle_ms": round(up[1] * 1000)}


#: /proc/net/snmp section -> counter -> snapshot field
SNMP_FIELDS: dict[str, dict[str, str]] = {
    "Ip": {
        "DefaultTTL": "snmp_ip_default_ttl",
        "InReceives": "snmp_ip_in_receives",
        "InHdrErrors": "snmp_ip_in_hdr_errors",
        "InAddrErrors": "snmp_ip_in_addr_errors",
        "ForwDatagrams": "snmp_ip_forw_datagrams",
        "InUnknownProtos": "snmp_ip_in_unknown_protos",
        "InDiscards": "snmp_ip_in_discards",
        "InDelivers": "snmp_ip_in_delivers",
        "OutRequests": "snmp_ip_out_requests",
        "OutDiscards": "snmp_ip_out_discards",
        "OutNoRoutes": "snmp_ip_out_no_routes",
        "ReasmTimeout": "snmp_ip_reasm_timeout",
        "ReasmReqds": "snmp_ip_reasm_reqds",
        "ReasmOKs": "snmp_ip_reasm_oks",
        "ReasmFails": "snmp_ip_reasm_fails",
        "FragOKs": "snmp_ip_frag_oks",
        "FragFails": "snmp_ip_frag_fails",
        "FragCreates": "snmp_ip_frag_creates",
    },
    "Icmp": {
        f"{d}{name}": f"snmp_icmp_{d.lower()}_{field}"
        for d in ("In", "Out")
        for name, field in (
            ("Msgs", "msgs"),
            ("Errors", "errors"),
            ("DestUnreachs", "dest_unreachs"),
            ("TimeExcds", "time_excds"),
            ("ParmProbs", "parm_probs"),
            ("SrcQuenchs", "src_quenchs"),
            ("Redirects", "redirects"),
            ("Echos", "echos"),
            ("EchoReps", "echo_reps"),
            ("Timestamps", "timestamps"),
            ("TimestampReps", "timestamp_reps"),
            ("AddrMasks", "addr_masks"),
            ("AddrMaskReps", "addr_mask_reps"),
        )
    }
    | {"InCsumErrors": "snmp_icmp_in_csum_errors"},
    "Tcp": {
        "RtoMin": "snmp_tcp_rto_min",
        "RtoMax": "snmp_tcp_rto_max",
        "MaxConn": "snmp_tcp_max_conn",
        "ActiveOpens": "snmp_tcp_active_opens",
        "PassiveOpens": "snmp_tcp_passive_opens",
        "AttemptFails": "snmp_tcp_attempt_fails",
        "EstabResets": "snmp_tcp_estab_resets",
        "CurrEstab": "snmp_tcp_curr_estab",
        "InSegs": "snmp_tcp_in_segs",
        "OutSegs": "snmp_tcp_out_segs",
        "RetransSegs": "snmp_tcp_retrans_segs",
        "InErrs": "snmp_tcp_in_errs",
        "OutRsts": "snmp_tcp_out_rsts",
        "InCsumErrors": "snmp_tcp_in_csum_errors",
    },
    "Udp": {
        "InDatagrams": "snmp_udp_in_datagrams",
        "NoPorts": "snmp_udp_no_ports",
        "InErrors": "snmp_udp_in_errors",
        "OutDatagrams": "snmp_udp_out_datagrams",
    },
}


def snmp(host: Host) -> Fields:
    sections = proc.read_net_snmp(host.procfs)
    out: Fields = {}
    ip = sections.get("Ip", {})
    if "Forwarding" in ip:  # RFC 1213 ipForwarding: 1 forwarding, 2 not forwarding
        out["snmp_ip_forwarding_enabled"] = ip["Forwarding"] == 1
    for section, names in SNMP_FIELDS.items():
        counters = sections.get(section, {})
        out.update({field: counters[key] for key, field in names.items() if key in counters})
    return out


# -- nested arrays ---------------------------------------------------------------------------


def disks(host: Host) -> Fields:
    items = [
        {"name": d.name, "major": d.major, "minor": d.minor, **d.counters}
        for d in proc.read_diskstats(host.procfs)
    ]
    return {"disks": items} if items else {}


def netdevs(host: Host) -> Fields:
    items = [{"name": name, **c} for name, c in proc.read_net_dev(host.procfs).items()]
    return {"netdevs": items} if items else {}


def _block_device_for(source: str, devices: list[sys_.BlockDevice]) -> sys_.BlockDevice | None:
    """The whole disk behind a mount source (``/dev/sda1``, ``/dev/mapper/vg-root``)."""
    if not source.startswith("/dev/"):
        return None
    base = os.path.basename(source)
    for dev in devices:
        if base == dev.name or base in dev.partitions:
            return dev
        if source.startswith("/dev/mapper/") and dev.dm_name == base:
            return dev
    return None


def mounts(host: Host) -> Fields:
    """Mounts backed by a block device the host lists in /sys/block (the reference's
    ``kind`` is the disk's, HDD or SSD; pseudo filesystems have none)."""
    devices = sys_.read_block_devices(host.sysfs)
    by_point: dict[str, Fields] = {}
    for entry in proc.read_mounts(host.procfs):
        dev = _block_device_for(entry.source, devices)
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


SECTIONS: tuple[Callable[[Host], Fields], ...] = (
    cpu_and_kernel,
    pressure,
    load,
    memory,
    uptime,
    snmp,
    disks,
    netdevs,
    mounts,
    thermals,
    interfaces,
    routes,
)


@dataclass
class Collected:
    fields: Fields
    failures: int  # sections whose reader raised


def collect(host: Host) -> Collected:
    """Every section's fields; a failing section is logged, counted and skipped."""
    fields: Fields = {}
    failures = 0
    for section in SECTIONS:
        try:
            fields.update(section(host))
        except (OSError, ValueError, IndexError, KeyError) as e:
            failures += 1
            log.warning("reading %s failed: %s: %s", section.__name__, type(e).__name__, e)
    return Collected(fields, failures)
