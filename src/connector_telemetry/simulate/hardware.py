"""The box under a simulated connector: network devices, the disk and its mounts,
memory, sensors, tunnels and LAN clients, and the nested arrays of a snapshot
(reference §4.10.1) they report, with every required field of each element."""

from __future__ import annotations

from typing import Any

from connector_telemetry.simulate.gauges import Walk, chance
from connector_telemetry.simulate.plan import Identity
from connector_telemetry.simulate.rng import Rng

_NETDEV = (
    "recv_bytes", "recv_packets", "recv_errs", "recv_drop", "recv_fifo", "recv_frame",
    "recv_compressed", "recv_multicast", "sent_bytes", "sent_packets", "sent_errs",
    "sent_drop", "sent_fifo", "sent_colls", "sent_carrier", "sent_compressed",
)  # fmt: skip
_DISK = (
    "reads", "merged", "sectors_read", "time_reading_ms", "writes", "writes_merged",
    "sectors_written", "time_writing_ms", "time_in_progress_ms",
    "weighted_time_in_progress_ms", "discards", "discards_merged", "sectors_discarded",
    "time_discarding_ms", "flushes", "time_flushing_ms",
)  # fmt: skip
_HEALTH = {"healthy": 1, "degraded": 2, "down": 3}
_GIB = 1 << 30
_LEASE_SECONDS = 43200


class _TunnelState:
    __slots__ = ("health", "jitter", "latency", "mtu", "port", "unhealthy")

    def __init__(self, latency: float, interval: float, mtu: int) -> None:
        self.health = "healthy"
        self.latency = Walk(latency, latency * 0.7, latency * 4, 0.3, latency * 0.05, interval)
        self.jitter = Walk(latency * 0.05, 0.1, latency, 0.3, latency * 0.01, interval)
        self.mtu = mtu
        self.unhealthy = 0
        self.port = 4500


class Hardware:
    def __init__(self, ident: Identity, rng: Rng, interval: float) -> None:
        self.ident, self.interval = ident, interval
        if ident.virtual:
            dev, self.major = ("vda", 252) if ident.platform == "virtual-kvm" else ("sda", 8)
            self.part = [f"{dev}{k}" for k in range(5)]
        else:
            dev, self.major = "nvme0n1", 259
            self.part = [f"{dev}p{k}" for k in range(5)]
        self.disk_name = dev
        self.write_ms = 0.6 if ident.virtual else 0.05  # per write
        names = ["lo", "eth0", "eth1"] + (["eth2"] if ident.ha_enabled else [])
        names += [t.interface_name for t in ident.tunnels]
        self.netdevs = {name: dict.fromkeys(_NETDEV, 0.0) for name in names}
        self.disk = dict.fromkeys(_DISK, 0.0)
        self.tunnels = [
            _TunnelState(t.latency_ms, interval, rng.choice((1420, 1436, 1436)))
            for t in ident.tunnels
        ]
        weights = sum(t.weight for t in ident.tunnels)
        self.shares = [t.weight / weights for t in ident.tunnels]
        self.var_total = int(ident.disk_gib * _GIB * 0.85)
        self.var_base = rng.uniform(0.8, 2.5) * _GIB  # software, state, spool
        self.log_budget = rng.uniform(0.8, 1.5) * _GIB
        self.logs = rng.uniform(0.1, 0.5) * self.log_budget
        self.over_budget = False
        mem_kib = ident.memory_gib * 1024 * 1024
        self.mem_total = int(mem_kib * 0.97)
        self.anon = Walk(0.22, 0.1, 0.5, 0.2, 0.01, interval)
        self.cache = Walk(0.35, 0.02, 0.5, 0.02, 0.005, interval, value=0.04)
        self.slab = Walk(0.04, 0.02, 0.08, 0.2, 0.002, interval)
        self.dirty = Walk(8000, 0, 60000, 0.5, 3000, interval)
        self.vmalloc = Walk(48000, 30000, 90000, 0.2, 800, interval)
        self.temp = Walk(0.0, -4, 4, 0.3, 0.8, interval)
        self.leases = [
            (f"client-{k + 1:02d}", _mac(rng), rng.uniform(0, 21600))
            for k in range(rng.randint(3, 8))
        ]
        self.step_packets = (0.0, 0.0, 0.0, 0.0)
        self.step_probes = 0.0
        self.probe_success = 1.0
        self.busy = 0.0

    def reboot(self, rng: Rng) -> None:
        """A fresh boot: caches are cold, NAT mappings are new."""
        self.cache.value = rng.uniform(0.02, 0.05)
        self.anon.value = rng.uniform(0.1, 0.15)
        for tunnel in self.tunnels:
            tunnel.port = 4500 if rng.random() < 0.5 else rng.randint(1024, 65535)

    def carry(self, rng: Rng, bps: float, dt: float) -> None:
        """Move ``dt`` seconds of traffic at ``bps`` (download) through the devices."""
        down = bps / 8 * dt
        up = down * 0.35
        nd = self.netdevs
        self._flow(nd["eth0"], down * 1.08, 1100, up * 1.08, 450)
        self._flow(nd["eth1"], up, 450, down, 1000)
        self._flow(nd["lo"], dt * 2000, 300, dt * 2000, 300)
        if "eth2" in nd:  # HA heartbeat link
            self._flow(nd["eth2"], dt * 400, 120, dt * 400, 120)
        nd["eth1"]["recv_multicast"] += dt * 0.3
        if chance(rng, 0.05, self.interval):
            nd["eth0"]["recv_drop"] += rng.randint(1, 30)
        if chance(rng, 0.005, self.interval):
            nd["eth0"]["recv_errs"] += rng.randint(1, 3)
        if chance(rng, 0.01, self.interval):
            nd["eth1"]["sent_drop"] += rng.randint(1, 10)
        self.step_packets = (
            down * 1.08 / 1100,
            up * 1.08 / 450,
            up / 450,
            down / 1000,
        )
        healthy = 0.0
        for tunnel, share, state in zip(self.ident.tunnels, self.shares, self.tunnels, strict=True):
            self._flow(nd[tunnel.interface_name], down * 0.8 * share, 1050, up * 0.8 * share, 420)
            self._tunnel_health(rng, state)
            healthy += (60 - state.unhealthy) / 60
        self.step_probes = dt * len(self.tunnels)
        self.probe_success = healthy / len(self.tunnels)
        writes = dt * (2 + 6 * bps / 1e8 + rng.uniform(0, 2))
        reads = dt * rng.uniform(0.05, 0.3)
        d = self.disk
        d["writes"] += writes
        d["writes_merged"] += writes * 0.3
        d["sectors_written"] += writes * 16
        d["time_writing_ms"] += writes * self.write_ms
        d["reads"] += reads
        d["merged"] += reads * 0.1
        d["sectors_read"] += reads * 32
        d["time_reading_ms"] += reads * self.write_ms * 2
        d["time_in_progress_ms"] += (reads + writes) * self.write_ms * 0.8
        d["weighted_time_in_progress_ms"] += (reads + writes) * self.write_ms * 1.3
        d["flushes"] += writes * 0.08
        d["time_flushing_ms"] += writes * 0.08 * self.write_ms * 3
        d["discards"] += dt * 0.002
        d["discards_merged"] += dt * 0.0005
        d["sectors_discarded"] += dt * 0.002 * 2048
        d["time_discarding_ms"] += dt * 0.002 * 0.5
        self.logs += writes * 16 * 512 * 0.12
        self.busy = min(1.0, bps / max(self.ident.traffic_bps, 1.0))

    @staticmethod
    def _flow(dev: dict[str, float], rx: float, rx_size: int, tx: float, tx_size: int) -> None:
        dev["recv_bytes"] += rx
        dev["recv_packets"] += rx / rx_size
        dev["sent_bytes"] += tx
        dev["sent_packets"] += tx / tx_size

    def _tunnel_health(self, rng: Rng, state: _TunnelState) -> None:
        interval = self.interval
        if state.health == "healthy":
            if chance(rng, 0.0008, interval):
                state.health = "down"
            elif chance(rng, 0.004, interval):
                state.health = "degraded"
        elif rng.random() < (0.5 if state.health == "down" else 0.35):
            state.health = "healthy"
        latency = state.latency.next(rng)
        state.jitter.next(rng)
        if state.health == "degraded":
            state.unhealthy = rng.randint(5, 25)
            state.latency.value = latency * rng.uniform(1.2, 1.6)
        else:
            state.unhealthy = 60 if state.health == "down" else int(rng.random() < 0.05)

    def reclaim(self, rng: Rng) -> tuple[int, int]:
        """Log retention: over budget, old logs are reclaimed (paths freed), and now and
        then the reclamation fails and is tried again at the next snapshot."""
        if self.logs < self.log_budget:
            return 0, 0
        if rng.random() < 0.05:
            return 0, 1
        paths = rng.randint(40, 400)
        self.logs = self.log_budget * rng.uniform(0.15, 0.35)
        return paths, 0

    def memory(self, rng: Rng) -> dict[str, int]:
        total = self.mem_total
        anon = total * self.anon.next(rng)
        cached = total * self.cache.next(rng)
        slab = total * self.slab.next(rng)
        buffers = total * 0.015
        kernel_stack = 9000 + 1100 * self.ident.cpu_count
        page_tables = 6000 + anon * 0.004
        shmem = total * 0.008
        free = max(
            total * 0.03, total - anon - cached - buffers - slab - kernel_stack - page_tables
        )
        s_reclaimable = slab * 0.62
        out: dict[str, float] = {
            "memory_total_bytes": total,
            "memory_free_bytes": free,
            "memory_available_bytes": free + cached * 0.85 + s_reclaimable + buffers,
            "memory_buffers_bytes": buffers,
            "memory_cached_bytes": cached,
            "memory_swap_cached_bytes": 0,
            "memory_active_bytes": anon * 0.8 + cached * 0.35,
            "memory_inactive_bytes": anon * 0.2 + cached * 0.65 + buffers,
            "memory_swap_total_bytes": 0,
            "memory_swap_free_bytes": 0,
            "memory_dirty_bytes": self.dirty.next(rng),
            "memory_writeback_bytes": 0,
            "memory_anon_pages_bytes": anon,
            "memory_mapped_bytes": anon * 0.22 + cached * 0.1,
            "memory_shmem_bytes": shmem,
            "memory_k_reclaimable_bytes": s_reclaimable + total * 0.002,
            "memory_slab_bytes": slab,
            "memory_s_reclaimable_bytes": s_reclaimable,
            "memory_s_unreclaim_bytes": slab - s_reclaimable,
            "memory_kernel_stack_bytes": kernel_stack,
            "memory_page_tables_bytes": page_tables,
            "memory_commit_limit_bytes": total / 2,
            "memory_committed_as_bytes": anon * 1.7 + shmem,
            "memory_vmalloc_total_bytes": 34359738367,
            "memory_vmalloc_used_bytes": self.vmalloc.next(rng),
            "memory_vmalloc_chunk_bytes": 0,
            "memory_per_cpu_bytes": 1400 * self.ident.cpu_count,
            "memory_anon_hugepages_bytes": anon * 0.08 // 2048 * 2048,
            "memory_hugepages_total": 0,
            "memory_hugepages_free": 0,
            "memory_hugepages_rsvd": 0,
            "memory_hugepages_surp": 0,
            "memory_hugepagesize_bytes": 2048,
        }
        return {
            name: int(value) if name.startswith("memory_hugepages_") else int(value) * 1024
            for name, value in out.items()
        }

    def arrays(self, rng: Rng, t: float, dt: float, slot: int, load: float) -> dict[str, Any]:
        ident = self.ident
        lan = ident.lan_prefix
        netdevs = [
            {"name": name, **{k: int(v) for k, v in acc.items()}}
            for name, acc in self.netdevs.items()
        ]
        disk: dict[str, Any] = {"name": self.disk_name, "major": self.major, "minor": 0}
        for name, value in self.disk.items():
            if name == "time_in_progress_ms":
                disk["in_progress"] = int(rng.random() < 0.05)
            disk[name] = int(value)
        worst = max((s.unhealthy for s in self.tunnels), default=0)
        wan_health = 100 - min(60, worst)
        interfaces = [
            _interface("lo", "UNKNOWN", None, ["127.0.0.1", "::1"]),
            _interface("eth0", "UP", ident.link_bps, [ident.wan_ip], wan_health, worst),
            _interface("eth1", "UP", 1_000_000_000, [f"{lan}.1"], 100, 0),
        ]
        if ident.ha_enabled:
            interfaces.append(_interface("eth2", "UP", 1_000_000_000, ["169.254.77.1"], 100, 0))
        tunnels = []
        for k, (tunnel, state) in enumerate(zip(ident.tunnels, self.tunnels, strict=True)):
            interfaces.append(
                _interface(tunnel.interface_name, "UP", None, [f"169.254.244.{2 * k + 1}"])
            )
            item: dict[str, Any] = {
                "tunnel_id": tunnel.tunnel_id,
                "interface_name": tunnel.interface_name,
                "health_state": state.health,
                "health_value": _HEALTH[state.health],
            }
            if state.health != "down":
                item["latency_ms"] = round(state.latency.value, 2)
                item["jitter_ms"] = round(state.jitter.value, 2)
            item["probed_mtu"] = state.mtu
            item["recent_healthy_pings"] = 60 - state.unhealthy
            item["recent_unhealthy_pings"] = state.unhealthy
            item["natd_result"] = f"{ident.wan_ip}:{state.port}"
            item["natd_target"] = f"{tunnel.peer}:4500"
            item["natd_state"] = 0 if state.health == "healthy" else 2
            tunnels.append(item)
        routes: list[dict[str, Any]] = [
            {
                "destination": "default",
                "interface_name": "eth0",
                "kind": "breakout",
                "metric": 100,
                "gateway": ident.wan_gateway,
            },
            {"destination": f"{lan}.0/24", "interface_name": "eth1", "kind": "lan", "metric": 0},
        ]
        for tunnel, share in zip(ident.tunnels, self.shares, strict=True):
            routes.append(
                {
                    "destination": "10.0.0.0/8",
                    "interface_name": tunnel.interface_name,
                    "kind": "tunnel",
                    "metric": 10,
                    "weight": round(share * 100),
                }
            )
        used = self.var_base + self.logs
        files = 60000 + self.logs / 300_000
        var_inodes = self.var_total // 16384
        mounts = [
            _mount(f"/dev/{self.part[2 + slot]}", "SQUASHFS", "/", 1_200_000_000, 0, 0, 0, True),
            _mount(f"/dev/{self.part[1]}", "VFAT", "/boot/efi", 268_435_456, 201_326_592, 0, 0),
            _mount(
                f"/dev/{self.part[4]}",
                "EXT4",
                "/var",
                self.var_total,
                int(self.var_total - used),
                var_inodes,
                int(var_inodes - files),
            ),
        ]
        out: dict[str, Any] = {
            "dhcp_leases": [
                {
                    "client_id": "01:" + mac,
                    "expiry_time": int(((t - phase) // 21600) * 21600 + phase + _LEASE_SECONDS),
                    "hostname": name,
                    "interface_name": "eth1",
                    "ip_address": f"{lan}.{100 + k}",
                    "mac_address": mac,
                }
                for k, (name, mac, phase) in enumerate(self.leases)
            ],
            "disks": [disk],
            "interfaces": interfaces,
            "mounts": mounts,
            "netdevs": netdevs,
            "routes": routes,
            "tunnels": tunnels,
        }
        if not ident.virtual:
            heat = self.temp.next(rng)
            out["thermals"] = [
                _thermal("Package id 0", 38 + 35 * self.busy + heat, 84, 100),
                _thermal("acpitz", 30 + 14 * self.busy + heat / 2, 95, 105),
                _thermal("nvme Composite", 36 + 8 * load + heat / 2, 80, 85),
            ]
        return out


def _mac(rng: Rng) -> str:
    """A locally administered unicast MAC address."""
    raw = "02" + rng.hex(10)
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def _interface(
    name: str,
    operstate: str,
    speed: int | None,
    addresses: list[str],
    score: int | None = None,
    unhealthy: int = 0,
) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "operstate": operstate}
    if speed is not None:
        item["speed"] = speed
    if score is not None:
        item["health_score"] = score
        item["health_reason"] = "" if not unhealthy else "packet_loss,tunnel_degraded"
    item["ip_addresses"] = [{"interface_name": name, "ip_address": a} for a in addresses]
    return item


def _mount(
    name: str,
    fs: str,
    point: str,
    total: int,
    available: int,
    inodes: int,
    free_inodes: int,
    read_only: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "SSD",
        "file_system": fs,
        "mount_point": point,
        "available_bytes": available,
        "total_bytes": total,
        "available_inodes": free_inodes,
        "total_inodes": inodes,
        "is_read_only": read_only,
        "is_removable": False,
    }


def _thermal(label: str, current: float, high: int, critical: int) -> dict[str, Any]:
    return {
        "label": label,
        "current_celcius": round(current, 1),
        "max_celcius": high,
        "critical_celcius": critical,
    }
