"""One connector's snapshots (reference §4.10.1), one per snapshot time of its
timeline, from a model of its site's traffic.

Traffic follows the site's business day; CPU, load, temperatures, disk writes, packet
and SNMP counters follow traffic. Cumulative counters (``cpu_time_*``, ``netdevs``,
``disks``, ``snmp_*`` except the gauges among them, ``kernel_ctxt``, the pressure
``*_total_us`` and the ``count_*`` fields) never decrease, not even across the reboot
after an upgrade; the uptime fields and the boot times do restart there, as they do
on a real box. Gauges are bounded walks. The generator draws only from its own
random stream, so it needs nothing but the identity and the timeline.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Any

from connector_telemetry.simulate.gauges import Counters, Daylight, Walk, chance
from connector_telemetry.simulate.hardware import Hardware
from connector_telemetry.simulate.plan import Identity, SimConfig
from connector_telemetry.simulate.rng import derive_rng
from connector_telemetry.simulate.timeline import HA_VALUES, Timeline

# fmt: off
_CPU = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
        "guest_nice")
_PSI = ("cpu_pressure", "io_pressure_some", "io_pressure_full", "memory_pressure_some",
        "memory_pressure_full")
_ICMP = ("msgs", "errors", "dest_unreachs", "time_excds", "parm_probs", "src_quenchs",
         "redirects", "echos", "echo_reps", "timestamps", "timestamp_reps", "addr_masks",
         "addr_mask_reps")
_IP = ("in_receives", "in_hdr_errors", "in_addr_errors", "forw_datagrams", "in_unknown_protos",
       "in_discards", "in_delivers", "out_requests", "out_discards", "out_no_routes",
       "reasm_reqds", "reasm_oks", "reasm_fails", "frag_oks", "frag_fails", "frag_creates")
_TCP = ("active_opens", "passive_opens", "attempt_fails", "estab_resets", "in_segs", "out_segs",
        "retrans_segs", "in_errs", "out_rsts", "in_csum_errors")
_UDP = ("in_datagrams", "no_ports", "in_errors", "out_datagrams")
# fmt: on
_SNMP = (
    *(f"snmp_icmp_{d}_{k}" for d in ("in", "out") for k in _ICMP),
    "snmp_icmp_in_csum_errors",
    *(f"snmp_ip_{k}" for k in _IP),
    *(f"snmp_tcp_{k}" for k in _TCP),
    *(f"snmp_udp_{k}" for k in _UDP),
)
COUNTERS: tuple[str, ...] = (
    "count_reclaim_failures",
    "count_reclaimed_paths",
    "count_record_failed",
    "count_transmit_failures",
    *(f"cpu_time_{k}_ms" for k in _CPU),
    *(f"{p}_total_us" for p in _PSI),
    "kernel_ctxt",
    "kernel_processes",
    *_SNMP,
)
_KIB = 1024


def _kib(value: float) -> int:
    return int(value) * _KIB


class SnapshotModel:
    def __init__(self, config: SimConfig, ident: Identity, timeline: Timeline) -> None:
        self.config, self.ident, self.timeline = config, ident, timeline
        self.rng = rng = derive_rng(config.seed, "snapshots", ident.index)
        step = config.interval
        self.day = Daylight(ident.timezone, config.start, rng.uniform(0.3, 0.9))
        self.hw = Hardware(ident, rng, step)
        self.c = Counters(COUNTERS)
        self.traffic = Walk(1.0, 0.4, 1.8, 0.3, 0.12, step)
        self.cpu_noise = Walk(1.0, 0.6, 1.5, 0.4, 0.08, step)
        self.io_some = Walk(0.4, 0.0, 6.0, 0.3, 0.25, step)
        self.mem_some = Walk(0.02, 0.0, 2.0, 0.5, 0.03, step)
        self.procs = Walk(rng.uniform(170, 240), 120, 400, 0.2, 4, step)
        self.tcp_estab = Walk(rng.uniform(5, 12), 2, 40, 0.3, 1.5, step)
        self.load = [0.0, 0.0, 0.0]
        self.psi = {p: [0.0, 0.0, 0.0] for p in _PSI}

    def snapshots(self) -> Iterator[dict[str, Any]]:
        tl = self.timeline
        starts = [b.init_t for b in tl.boots]
        ha_times = [t for t, _ in tl.ha]
        boot_index = -1
        previous = None
        idle_since_boot = 0.0
        for t in tl.snapshot_times:
            i = max(bisect.bisect_right(starts, t) - 1, 0)
            boot = tl.boots[i]
            if i != boot_index:
                boot_index, idle_since_boot = i, 0.0
                self.hw.reboot(self.rng)
                self.load = [0.0, 0.0, 0.0]
            dt = self.config.interval if previous is None else t - previous
            previous = t
            ha_state = tl.ha[max(bisect.bisect_right(ha_times, t) - 1, 0)][1]
            snap, idle_ms = self._one(t, dt, boot.version, ha_state)
            idle_since_boot += idle_ms
            uptime = t - boot.boot_time
            snap["system_boot_time_s"] = snap["kernel_btime"] = int(boot.boot_time)
            snap["uptime_total_ms"] = int(uptime * 1000)
            snap["uptime_idle_ms"] = int(min(idle_since_boot, uptime * 1000 * self.ident.cpu_count))
            snap.update(self.hw.arrays(self.rng, t, dt, boot.slot, self.day.load(t)))
            yield snap

    def _one(
        self, t: float, dt: float, version: str, ha_state: str
    ) -> tuple[dict[str, Any], float]:
        rng, ident, c = self.rng, self.ident, self.c
        interval = self.config.interval
        bps = ident.traffic_bps * self.day.load(t) * self.traffic.next(rng)
        self.hw.carry(rng, bps, dt)

        # CPU: IPsec and forwarding cost about 0.3 cores per 100 Mbit/s, plus background
        cores = ident.cpu_count
        need = (0.08 + 0.3 * bps / 1e8) * self.cpu_noise.next(rng)
        busy = min(0.95, need / cores)
        total_ms = cores * dt * 1000
        iowait = 0.002 + 0.01 * self.io_some.value / 6
        steal = 0.01 * busy if ident.virtual else 0.0
        shares = {
            "user": 0.42 * busy,
            "nice": 0.01 * busy,
            "system": 0.24 * busy,
            "iowait": iowait,
            "irq": 0.04 * busy,
            "softirq": 0.29 * busy,
            "steal": steal,
        }
        idle_ms = total_ms * max(0.0, 1 - sum(shares.values()))
        for name, share in shares.items():
            c.add(f"cpu_time_{name}_ms", total_ms * share)
        c.add("cpu_time_idle_ms", idle_ms)
        c.add("kernel_ctxt", dt * (1500 + 40000 * busy) * cores)
        c.add("kernel_processes", dt * rng.uniform(0.3, 2.5))

        # load averages: exponentially damped like the kernel's, toward the runnable count
        runnable = busy * cores * 1.1 + rng.uniform(0, 0.3)
        for k, window in enumerate((60.0, 300.0, 900.0)):
            self.load[k] += (runnable - self.load[k]) * (1 - math.exp(-dt / window))

        # pressure stall information: percentages over 10 s / 60 s / 300 s, totals in µs
        cpu_some = 100 * max(0.0, busy - 0.45) ** 2 * 1.5
        io_some = self.io_some.next(rng)
        mem_some = self.mem_some.next(rng) if rng.random() < 0.2 else 0.0
        levels = {
            "cpu_pressure": cpu_some,
            "io_pressure_some": io_some,
            "io_pressure_full": io_some * 0.4,
            "memory_pressure_some": mem_some,
            "memory_pressure_full": mem_some * 0.5,
        }
        psi: dict[str, float] = {}
        for name, level in levels.items():
            windows = self.psi[name]
            for k, window in enumerate((10.0, 60.0, 300.0)):
                noisy = level * rng.uniform(0.5, 1.5) if k == 0 else level
                windows[k] += (noisy - windows[k]) * (1 - math.exp(-dt / window))
                psi[f"{name}_{(10, 60, 300)[k]}s"] = round(windows[k], 2)
            c.add(f"{name}_total_us", level / 100 * dt * 1e6)

        # the agent's own bookkeeping: rare failures to record or transmit a snapshot
        if chance(rng, 0.001, interval):
            c.add("count_record_failed", 1)
        if chance(rng, 0.004, interval):
            c.add("count_transmit_failures", rng.randint(1, 3))
        reclaimed, failed = self.hw.reclaim(rng)
        c.add("count_reclaimed_paths", reclaimed)
        c.add("count_reclaim_failures", failed)
        self._snmp(dt)

        counters = c.items()
        snap: dict[str, Any] = {
            "t": t,
            "v": version,
            "count_reclaim_failures": counters.pop("count_reclaim_failures"),
            "count_reclaimed_paths": counters.pop("count_reclaimed_paths"),
            "count_record_failed": counters.pop("count_record_failed"),
            "count_transmit_failures": counters.pop("count_transmit_failures"),
            "platform": ident.platform,
            "site_id": ident.site_id,
            "ha_state": ha_state,
            "ha_value": HA_VALUES[ha_state],
            "cpu_count": cores,
            **psi,
            "kernel_processes_running": max(1, round(runnable)),
            "kernel_processes_blocked": 1 if rng.random() < iowait * 20 else 0,
            "load_average_1m": round(self.load[0], 2),
            "load_average_5m": round(self.load[1], 2),
            "load_average_15m": round(self.load[2], 2),
            "load_average_cur": max(1, round(runnable)),
            "load_average_max": round(self.procs.next(rng)),
            **self.hw.memory(rng),
            "snmp_ip_forwarding_enabled": True,
            "snmp_ip_default_ttl": 64,
            "snmp_ip_reasm_timeout": 30,
            "snmp_tcp_rto_min": 200,
            "snmp_tcp_rto_max": 120000,
            "snmp_tcp_max_conn": -1,
            "snmp_tcp_curr_estab": round(self.tcp_estab.next(rng)),
            **counters,
        }
        return snap, idle_ms

    def _snmp(self, dt: float) -> None:
        """SNMP counters from this step's packets (``hw.step``) and the tunnel probes."""
        c, hw, rng = self.c, self.hw, self.rng
        wan_in, wan_out, lan_in, _ = hw.step_packets
        local_in = dt * 18 + hw.step_probes
        local_out = dt * 16 + hw.step_probes
        add = c.add
        add("snmp_ip_in_receives", wan_in + lan_in + local_in)
        add("snmp_ip_in_delivers", wan_in * 0.82 + local_in)
        add("snmp_ip_forw_datagrams", lan_in + wan_in * 0.8)
        add("snmp_ip_out_requests", wan_out * 0.85 + local_out)
        add("snmp_ip_in_discards", wan_in * 2e-6)
        add("snmp_ip_out_discards", wan_out * 1e-6)
        add("snmp_ip_in_hdr_errors", dt * 1e-4)
        add("snmp_ip_in_addr_errors", dt * 5e-5)
        add("snmp_ip_in_unknown_protos", dt * 1e-5)
        add("snmp_ip_out_no_routes", dt * 2e-5)
        reasm = wan_in * 4e-4
        add("snmp_ip_reasm_reqds", reasm)
        add("snmp_ip_reasm_oks", reasm * 0.5)
        add("snmp_ip_reasm_fails", reasm * 0.001)
        frag = lan_in * 2e-4
        add("snmp_ip_frag_oks", frag)
        add("snmp_ip_frag_creates", frag * 2)
        add("snmp_ip_frag_fails", frag * 0.002)
        add("snmp_udp_in_datagrams", wan_in * 0.8 + dt * 2)
        add("snmp_udp_out_datagrams", wan_out * 0.8 + dt * 2)
        add("snmp_udp_no_ports", dt * 0.02)
        add("snmp_udp_in_errors", dt * 1e-4)
        segs = dt * rng.uniform(12, 20)
        add("snmp_tcp_in_segs", segs)
        add("snmp_tcp_out_segs", segs * 0.95)
        add("snmp_tcp_retrans_segs", segs * 0.003)
        add("snmp_tcp_active_opens", dt * 0.05)
        add("snmp_tcp_passive_opens", dt * 0.01)
        add("snmp_tcp_attempt_fails", dt * 0.001)
        add("snmp_tcp_estab_resets", dt * 0.002)
        add("snmp_tcp_in_errs", dt * 1e-5)
        add("snmp_tcp_out_rsts", dt * 0.02)
        echo_in, probes = dt * 0.02, hw.step_probes
        icmp_in = {
            "echo_reps": probes * hw.probe_success,
            "echos": echo_in,
            "dest_unreachs": dt * 0.01,
            "time_excds": dt * 0.001,
            "errors": dt * 1e-4,
        }
        icmp_out = {"echos": probes, "echo_reps": echo_in, "dest_unreachs": dt * 0.03}
        icmp_out["time_excds"] = dt * 0.002
        for name, amount in icmp_in.items():
            add(f"snmp_icmp_in_{name}", amount)
        for name, amount in icmp_out.items():
            add(f"snmp_icmp_out_{name}", amount)
        add("snmp_icmp_in_msgs", sum(icmp_in.values()))
        add("snmp_icmp_out_msgs", sum(icmp_out.values()))


def generate_snapshots(
    config: SimConfig, ident: Identity, timeline: Timeline
) -> Iterator[dict[str, Any]]:
    return SnapshotModel(config, ident, timeline).snapshots()
