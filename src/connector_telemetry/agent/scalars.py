"""The Snapshot's scalar fields (reference §4.10.1): CPU and kernel counters, PSI,
load, memory, uptime and SNMP, each section from one /proc file. The tables map the
kernel's names to the reference's; what a file does not have is left out."""

from __future__ import annotations

from connector_telemetry.agent import procfs as proc
from connector_telemetry.agent.host import Fields, Host


def _whole(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


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
