"""An account's fleet as Prometheus metrics: ``fleet_exposition(store, account_id)``.

Each connector's latest snapshot under node_exporter's names and units, so dashboards built
for node_exporter work on a connector unchanged; each series is told apart by ``instance``,
the connector's id (scrape with ``honor_labels: true`` so Prometheus keeps it). Plus ctel's own
view of each connector: ``ctel_connector_info``, the times of its last heartbeat and last
snapshot, its events and failures by kind (counters) and its pending interrupts (a gauge),
read for the whole account in one query each (``Store.fleet_activity``).

Times: samples carry no timestamp (Prometheus stamps them with the scrape's time). A
snapshot's own time would make Prometheus drop samples older than its head block (an hour)
and, being repeated on every scrape, never mark a silent connector's series stale. So a
silent connector keeps showing its last values, and alerts use
``ctel_connector_last_snapshot_timestamp_seconds`` (``time() - ... > 900``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from connector_telemetry.models import FAILURE_KINDS
from connector_telemetry.models.connector import Connector
from connector_telemetry.store.base import Store

#: node_exporter name -> (type, help, snapshot field, scale)
_SCALARS: list[tuple[str, str, str, str, float]] = [
    ("node_load1", "gauge", "1m load average.", "load_average_1m", 1),
    ("node_load5", "gauge", "5m load average.", "load_average_5m", 1),
    ("node_load15", "gauge", "15m load average.", "load_average_15m", 1),
    ("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.", "kernel_btime", 1),
    ("node_context_switches_total", "counter", "Total number of context switches.",
     "kernel_ctxt", 1),
    ("node_forks_total", "counter", "Total number of forks.", "kernel_processes", 1),
    ("node_procs_running", "gauge", "Number of processes in runnable state.",
     "kernel_processes_running", 1),
    ("node_procs_blocked", "gauge", "Number of processes blocked waiting for I/O.",
     "kernel_processes_blocked", 1),
    ("node_pressure_cpu_waiting_seconds_total", "counter",
     "Total time in seconds that processes have waited for CPU time.",
     "cpu_pressure_total_us", 1e-6),
    ("node_pressure_io_waiting_seconds_total", "counter",
     "Total time in seconds that processes have waited due to IO congestion.",
     "io_pressure_some_total_us", 1e-6),
    ("node_pressure_io_stalled_seconds_total", "counter",
     "Total time in seconds no process could make progress due to IO congestion.",
     "io_pressure_full_total_us", 1e-6),
    ("node_pressure_memory_waiting_seconds_total", "counter",
     "Total time in seconds that processes have waited for memory.",
     "memory_pressure_some_total_us", 1e-6),
    ("node_pressure_memory_stalled_seconds_total", "counter",
     "Total time in seconds no process could make progress due to memory congestion.",
     "memory_pressure_full_total_us", 1e-6),
    ("node_time_seconds", "gauge", "System time in seconds since epoch (the snapshot's).",
     "t", 1),
]  # fmt: skip

#: snapshot memory field -> node_exporter's /proc/meminfo name
_MEMINFO = {
    "memory_total_bytes": "MemTotal",
    "memory_free_bytes": "MemFree",
    "memory_available_bytes": "MemAvailable",
    "memory_buffers_bytes": "Buffers",
    "memory_cached_bytes": "Cached",
    "memory_swap_cached_bytes": "SwapCached",
    "memory_active_bytes": "Active",
    "memory_inactive_bytes": "Inactive",
    "memory_swap_total_bytes": "SwapTotal",
    "memory_swap_free_bytes": "SwapFree",
    "memory_dirty_bytes": "Dirty",
    "memory_writeback_bytes": "Writeback",
    "memory_anon_pages_bytes": "AnonPages",
    "memory_mapped_bytes": "Mapped",
    "memory_shmem_bytes": "Shmem",
    "memory_slab_bytes": "Slab",
    "memory_s_reclaimable_bytes": "SReclaimable",
    "memory_s_unreclaim_bytes": "SUnreclaim",
    "memory_kernel_stack_bytes": "KernelStack",
    "memory_page_tables_bytes": "PageTables",
    "memory_commit_limit_bytes": "CommitLimit",
    "memory_committed_as_bytes": "Committed_AS",
    "memory_vmalloc_total_bytes": "VmallocTotal",
    "memory_vmalloc_used_bytes": "VmallocUsed",
    "memory_anon_hugepages_bytes": "AnonHugePages",
    "memory_hugepagesize_bytes": "Hugepagesize",
}

_CPU_MODES = {
    "cpu_time_user_ms": "user",
    "cpu_time_nice_ms": "nice",
    "cpu_time_system_ms": "system",
    "cpu_time_idle_ms": "idle",
    "cpu_time_iowait_ms": "iowait",
    "cpu_time_irq_ms": "irq",
    "cpu_time_softirq_ms": "softirq",
    "cpu_time_steal_ms": "steal",
}

#: netdev field -> node_network_<name>_total
_NETDEV = {
    "recv_bytes": "receive_bytes",
    "recv_packets": "receive_packets",
    "recv_errs": "receive_errs",
    "recv_drop": "receive_drop",
    "recv_multicast": "receive_multicast",
    "sent_bytes": "transmit_bytes",
    "sent_packets": "transmit_packets",
    "sent_errs": "transmit_errs",
    "sent_drop": "transmit_drop",
}

#: disk field -> (node_disk_<name>, scale): node_exporter's units (seconds, bytes)
_DISK = {
    "reads": ("reads_completed_total", 1),
    "writes": ("writes_completed_total", 1),
    "merged": ("reads_merged_total", 1),
    "writes_merged": ("writes_merged_total", 1),
    "sectors_read": ("read_bytes_total", 512),
    "sectors_written": ("written_bytes_total", 512),
    "time_reading_ms": ("read_time_seconds_total", 1e-3),
    "time_writing_ms": ("write_time_seconds_total", 1e-3),
    "time_in_progress_ms": ("io_time_seconds_total", 1e-3),
    "weighted_time_in_progress_ms": ("io_time_weighted_seconds_total", 1e-3),
    "in_progress": ("io_now", 1),
}


class Families:
    """Samples grouped by metric family, as the text format requires, each family's lines
    kept as encoded bytes (a scrape of 10,000 connectors has over a million samples: as
    ``str`` objects they would take twice the memory). Labels come rendered
    (``label_text``): a connector's are rendered once, not once per sample."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, bytearray]] = {}

    def add(self, name: str, kind: str, help_: str, labels: str, value: Any) -> None:
        """One sample; skipped unless ``value`` is a finite number (not a bool)."""
        kind_of = type(value)
        if (kind_of is not float and kind_of is not int) or not math.isfinite(value):
            return
        self.keep(name, kind, help_, f"{name}{{{labels}}} {float(value)!r}")

    def keep(self, name: str, kind: str, help_: str, sample: str) -> None:
        """Keep one rendered sample (``name{labels} value``) with its family's."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = (kind, help_, bytearray())
        family[2].extend(sample.encode())
        family[2].extend(b"\n")

    def render(self) -> bytes:
        out = bytearray()
        while self._families:  # each family's lines freed once copied
            name, (kind, help_, lines) = next(iter(self._families.items()))
            del self._families[name]
            out += f"# HELP {name} {help_}\n# TYPE {name} {kind}\n".encode()
            out += lines
        return bytes(out)


def label_text(**labels: str) -> str:
    """``a="1",b="2"``, values escaped as the text format requires."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _number(value: Any, scale: float) -> Any:
    """``value * scale`` for a number, else None (skipped by ``Families.add``)."""
    kind = type(value)
    return value * scale if kind is float or kind is int else None


def connector_samples(out: Families, connector: Connector, snapshot: dict[str, Any] | None) -> None:
    me = label_text(instance=connector.id)
    add = out.add
    info = label_text(
        instance=connector.id,
        connector_id=connector.id,
        device_id=connector.device_id,
        device_type=connector.device_type,
        version=connector.last_seen_version or "",
        activated="true" if connector.activated else "false",
    )
    add("ctel_connector_info", "gauge", "Always 1: a connector and its facts.", info, 1)
    heartbeat = _epoch(connector.last_heartbeat)
    if heartbeat is not None:
        add("ctel_connector_last_heartbeat_timestamp_seconds", "gauge",
            "When the connector last reported (any event or snapshot), unixtime.", me,
            heartbeat)  # fmt: skip
    if snapshot is None:
        return
    add("ctel_connector_last_snapshot_timestamp_seconds", "gauge",
        "The time (t) of the connector's latest snapshot, unixtime.", me,
        snapshot.get("t"))  # fmt: skip
    get = snapshot.get
    for name, kind, help_, key, scale in _SCALARS:
        add(name, kind, help_, me, _number(get(key), scale))
    for key, mode in _CPU_MODES.items():
        add("node_cpu_seconds_total", "counter",
            'Seconds the CPUs spent in each mode (all CPUs together: cpu="all").',
            f'{me},cpu="all",mode="{mode}"', _number(get(key), 1e-3))  # fmt: skip
    for key, meminfo in _MEMINFO.items():
        add(f"node_memory_{meminfo}_bytes", "gauge",
            f"Memory information field {meminfo}_bytes.", me, get(key))  # fmt: skip
    for dev in get("netdevs") or ():
        labels = f"{me},{label_text(device=str(dev.get('name', '')))}"
        for key, name in _NETDEV.items():
            add(f"node_network_{name}_total", "counter", f"Network device statistic {name}.",
                labels, dev.get(key))  # fmt: skip
    for disk in get("disks") or ():
        labels = f"{me},{label_text(device=str(disk.get('name', '')))}"
        for key, (name, scale) in _DISK.items():
            add(f"node_disk_{name}", "counter" if name.endswith("_total") else "gauge",
                f"Disk statistic {name}.", labels, _number(disk.get(key), scale))  # fmt: skip
    for mount in get("mounts") or ():
        labels = (
            me
            + ","
            + label_text(
                device=str(mount.get("name", "")),
                fstype=str(mount.get("file_system", "")).lower(),
                mountpoint=str(mount.get("mount_point", "")),
            )
        )
        add("node_filesystem_size_bytes", "gauge", "Filesystem size in bytes.", labels,
            mount.get("total_bytes"))  # fmt: skip
        add("node_filesystem_avail_bytes", "gauge",
            "Filesystem space available to non-root users in bytes.", labels,
            mount.get("available_bytes"))  # fmt: skip
        add("node_filesystem_files", "gauge", "Filesystem total file nodes.", labels,
            mount.get("total_inodes"))  # fmt: skip
        add("node_filesystem_files_free", "gauge", "Filesystem total free file nodes.",
            labels, mount.get("available_inodes"))  # fmt: skip
        add("node_filesystem_readonly", "gauge", "Filesystem read-only status.", labels,
            1 if mount.get("is_read_only") else 0)  # fmt: skip
    for thermal in get("thermals") or ():
        add("node_hwmon_temp_celsius", "gauge", "Hardware monitor for temperature (input).",
            f'{me},chip="ctel",{label_text(sensor=str(thermal.get("label", "")))}',
            thermal.get("current_celcius"))  # fmt: skip


def activity_samples(
    out: Families, connector_id: str, kinds: dict[str, int], pending: bool
) -> None:
    """ctel's view of a connector's activity: its stored events by kind, its failures by
    kind (every kind of ``FAILURE_KINDS``, 0 included, so that the first failure is an
    increase that ``increase()`` sees), whether an interrupt waits for it."""
    me = label_text(instance=connector_id)
    for kind, count in sorted(kinds.items()):
        out.add("ctel_connector_events_total", "counter",
                "Events the connector reported, by kind (those stored: retention lowers it).",
                f'{me},kind="{kind}"', count)  # fmt: skip
    for kind in _FAILURES:
        out.add("ctel_connector_failures_total", "counter",
                "Events that report a failure (upgrade, attestation, key or PKI rotation, "
                "slot blessing, HA), by kind.",
                f'{me},kind="{kind}"', kinds.get(kind, 0))  # fmt: skip
    out.add("ctel_connector_interrupts_pending", "gauge",
            "Interrupts (reboot, restart, shutdown) waiting for the connector to pick them up.",
            me, 1 if pending else 0)  # fmt: skip


_FAILURES = sorted(FAILURE_KINDS)


def fleet_exposition(store: Store, account_id: str) -> bytes:
    out = Families()
    activity = store.fleet_activity(account_id)
    events: dict[str, dict[str, int]] = {}
    for connector_id, kind, count in activity.events:
        events.setdefault(connector_id, {})[kind] = count
    for connector in store.list_connectors(account_id, None):
        latest = store.latest_snapshots(account_id, connector.id, 1)
        snapshot = orjson.loads(latest[0]) if latest else None
        connector_samples(out, connector, snapshot)
        pending = connector.id in activity.pending_interrupts
        activity_samples(out, connector.id, events.get(connector.id, {}), pending)
    return out.render()


def iter_names(text: bytes) -> Iterator[str]:
    """The metric names of an exposition (for tests and documentation)."""
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            yield line.split("{", 1)[0]
