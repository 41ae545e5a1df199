"""The agent's /proc and /sys readers: on trees captured from real machines (exact values
read off the captured files), on small hand-made trees for the corner cases the
captures do not have, and once on this machine's real /proc and /sys."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.helpers import assert_valid_snapshot, fixture_host
from connector_telemetry.agent import Host, arrays, collect, scalars
from connector_telemetry.agent import procfs as proc

VM = "vm-6.18-x86_64"


@pytest.fixture(scope="module")
def vm() -> dict[str, Any]:
    collected = collect(fixture_host(VM))
    assert collected.failures == 0
    return collected.fields


def test_vm_cpu_and_kernel(vm: dict[str, Any]) -> None:
    assert vm["cpu_count"] == 2  # cpu0 and cpu1
    # "cpu  80500 0 39854 486877 1710 0 9709 88 0 0" at USER_HZ 100
    assert vm["cpu_time_user_ms"] == 805_000
    assert vm["cpu_time_nice_ms"] == 0
    assert vm["cpu_time_system_ms"] == 398_540
    assert vm["cpu_time_idle_ms"] == 4_868_770
    assert vm["cpu_time_iowait_ms"] == 17_100
    assert vm["cpu_time_softirq_ms"] == 97_090
    assert vm["cpu_time_steal_ms"] == 880
    assert vm["cpu_time_guest_nice_ms"] == 0
    assert vm["kernel_ctxt"] == 13_741_176
    assert vm["kernel_btime"] == vm["system_boot_time_s"] == 1_795_676_213
    assert vm["kernel_processes"] == 16_155
    assert (vm["kernel_processes_running"], vm["kernel_processes_blocked"]) == (1, 0)


def test_vm_load_uptime_pressure(vm: dict[str, Any]) -> None:
    # loadavg "0.36 0.68 0.99 1/87 16154"; uptime "3102.89 4868.77"
    assert (vm["load_average_1m"], vm["load_average_5m"], vm["load_average_15m"]) == (
        0.36,
        0.68,
        0.99,
    )
    assert (vm["load_average_cur"], vm["load_average_max"]) == (1, 87)
    assert (vm["uptime_total_ms"], vm["uptime_idle_ms"]) == (3_102_890, 4_868_770)
    assert vm["cpu_pressure_10s"] == 0.04
    assert vm["cpu_pressure_300s"] == 5.44
    assert vm["cpu_pressure_total_us"] == 324_267_999
    assert vm["io_pressure_some_total_us"] == 14_083_066
    assert vm["io_pressure_full_300s"] == 0.17
    assert vm["memory_pressure_full_10s"] == 0
    assert not [k for k in vm if k.startswith("cpu_pressure_full")]  # not in the reference


def test_vm_memory(vm: dict[str, Any]) -> None:
    assert vm["memory_total_bytes"] == 24_684_096 * 1024
    assert vm["memory_committed_as_bytes"] == 83_976 * 1024
    assert vm["memory_hugepagesize_bytes"] == 2048 * 1024
    assert vm["memory_hugepages_total"] == 0  # a count, not kB
    # this x86_64 kernel has no highmem split and no CMA: those lines are absent, so are they
    for absent in ("memory_high_total_bytes", "memory_low_free_bytes", "memory_cma_total_bytes"):
        assert absent not in vm


def test_vm_snmp(vm: dict[str, Any]) -> None:
    assert vm["snmp_ip_forwarding_enabled"] is False  # Forwarding 2
    assert vm["snmp_ip_default_ttl"] == 64
    assert vm["snmp_ip_in_receives"] == 32_973_068
    assert vm["snmp_tcp_rto_min"] == 200
    assert vm["snmp_tcp_rto_max"] == 120_000
    assert vm["snmp_tcp_max_conn"] == -1  # the kernel's "no fixed limit"
    assert vm["snmp_tcp_in_segs"] == 32_973_000
    assert vm["snmp_udp_out_datagrams"] == 68
    assert vm["snmp_icmp_in_dest_unreachs"] == 1


def test_vm_disks_and_netdevs(vm: dict[str, Any]) -> None:
    vda = next(d for d in vm["disks"] if d["name"] == "vda")
    assert vda == {
        "name": "vda",
        "major": 254,
        "minor": 0,
        "reads": 96503,
        "merged": 11257,
        "sectors_read": 5300170,
        "time_reading_ms": 220522,
        "writes": 93514,
        "writes_merged": 66419,
        "sectors_written": 6321064,
        "time_writing_ms": 38519,
        "in_progress": 0,
        "time_in_progress_ms": 23260,
        "weighted_time_in_progress_ms": 260939,
        "discards": 7653,
        "discards_merged": 52,
        "sectors_discarded": 1397616,
        "time_discarding_ms": 715,
        "flushes": 29350,
        "time_flushing_ms": 1182,
    }
    assert [d["name"] for d in vm["disks"]] == [*(f"loop{i}" for i in range(8)), "vda", "zram0"]
    eth0 = next(n for n in vm["netdevs"] if n["name"] == "eth0")
    assert (eth0["recv_bytes"], eth0["recv_packets"]) == (200_119_380, 5696)
    assert (eth0["sent_bytes"], eth0["sent_packets"]) == (356_725, 3339)
    assert [n["name"] for n in vm["netdevs"]] == ["lo", "ifb0", "ifb1", "eth0"]


def test_vm_routes_interfaces_mounts(vm: dict[str, Any]) -> None:
    assert vm["routes"] == [
        {
            "destination": "default",
            "interface_name": "eth0",
            "kind": "breakout",
            "metric": 0,
            "gateway": "192.0.2.1",
        },
        {"destination": "192.0.2.0/24", "interface_name": "eth0", "kind": "lan", "metric": 0},
    ]
    assert vm["interfaces"] == [
        {
            "name": "eth0",
            "operstate": "UP",  # speed is -1 (virtio): left out
            "ip_addresses": [
                {"interface_name": "eth0", "ip_address": "192.0.2.2"},
                {"interface_name": "eth0", "ip_address": "fe80::fc:ff:fe00:1"},
                {"interface_name": "eth0", "ip_address": "fd00::2"},
            ],
        },
        {"name": "ifb0", "operstate": "DOWN"},
        {"name": "ifb1", "operstate": "DOWN"},
        {
            "name": "lo",
            "operstate": "UNKNOWN",
            "ip_addresses": [
                {"interface_name": "lo", "ip_address": "127.0.0.1"},
                {"interface_name": "lo", "ip_address": "::1"},
            ],
        },
    ]
    # only the block-device mount; proc, sysfs, tmpfs, cgroup... have no disk kind
    assert vm["mounts"] == [
        {
            "name": "/dev/vda",
            "mount_point": "/",
            "file_system": "EXT4",
            "kind": "HDD",  # the virtio disk says rotational=1
            "is_read_only": False,
            "is_removable": False,
            "total_bytes": 66_053_021 * 4096,
            "available_bytes": 20_674_401 * 4096,
            "total_inodes": 16_777_216,
            "available_inodes": 16_328_060,
        }
    ]


def test_vm_has_nothing_it_cannot_know(vm: dict[str, Any]) -> None:
    for absent in ("thermals", "bonds", "tunnels", "dhcp_leases", "ha_state", "site_id"):
        assert absent not in vm


def test_thinkpad_thermal_zone_and_nothing_else() -> None:
    collected = collect(fixture_host("thinkpad-duo-4.6-thermal"))
    assert collected.failures == 0
    assert collected.fields == {
        "thermals": [{"label": "acpitz", "current_celcius": 96.0, "critical_celcius": 99.0}]
    }


def test_an_empty_tree_gives_an_empty_snapshot(tmp_path: Path) -> None:
    collected = collect(Host(procfs=str(tmp_path), sysfs=str(tmp_path), clock_ticks=100))
    assert (collected.fields, collected.failures) == ({}, 0)


# -- hand-made trees for corner cases ------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Host:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Host(
        procfs=str(root / "proc"),
        sysfs=str(root / "sys"),
        statvfs=lambda p: None,
        clock_ticks=250,
    )


def test_older_kernel_formats(tmp_path: Path) -> None:
    """2.6-era /proc/stat (7 cpu columns) and diskstats (11 counters), no PSI."""
    host = _tree(
        tmp_path,
        {
            "proc/stat": "cpu  250 5 500 1000 0 25 0\ncpu0 250 5 500 1000 0 25 0\nbtime 12\n",
            "proc/diskstats": "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n",
        },
    )
    fields = collect(host).fields
    assert fields["cpu_count"] == 1
    assert fields["cpu_time_user_ms"] == 1000  # 250 ticks at 250 Hz
    assert fields["cpu_time_irq_ms"] == 100
    assert "cpu_time_steal_ms" not in fields and "cpu_time_guest_ms" not in fields
    assert fields["kernel_btime"] == 12 and "kernel_ctxt" not in fields
    assert fields["disks"][0]["weighted_time_in_progress_ms"] == 11
    assert "discards" not in fields["disks"][0] and "flushes" not in fields["disks"][0]
    assert not [k for k in fields if "pressure" in k]


def test_mounts_partitions_mapper_escapes_and_shadowing(tmp_path: Path) -> None:
    host = _tree(
        tmp_path,
        {
            "proc/mounts": (
                "/dev/sda2 / ext4 rw,relatime 0 0\n"
                "tmpfs /run tmpfs rw 0 0\n"
                "/dev/mapper/vg-data /srv/my\\040data xfs ro,noatime 0 0\n"
                "/dev/sdb1 /media/usb vfat rw 0 0\n"
                "/dev/sdb1 /media/usb vfat ro 0 0\n"
                "/dev/disk/by-uuid/1234 /opt ext4 rw 0 0\n"
            ),
            "sys/block/sda/queue/rotational": "0\n",
            "sys/block/sda/removable": "0\n",
            "sys/block/sda/sda2/partition": "2\n",
            "sys/block/dm-0/queue/rotational": "1\n",
            "sys/block/dm-0/dm/name": "vg-data\n",
            "sys/block/sdb/queue/rotational": "1\n",
            "sys/block/sdb/removable": "1\n",
            "sys/block/sdb/sdb1/partition": "1\n",
        },
    )
    sizes = {"/": SimpleNamespace(f_frsize=4096, f_blocks=10, f_bavail=4, f_files=8, f_favail=2)}
    host = Host(host.procfs, host.sysfs, lambda p: sizes.get(p), 100)
    mounts = arrays.mounts(host)["mounts"]
    assert mounts == [
        {
            "name": "/dev/sda2",
            "mount_point": "/",
            "file_system": "EXT4",
            "kind": "SSD",
            "is_read_only": False,
            "is_removable": False,
            "total_bytes": 40960,
            "available_bytes": 16384,
            "total_inodes": 8,
            "available_inodes": 2,
        },
        {
            "name": "/dev/mapper/vg-data",
            "mount_point": "/srv/my data",
            "file_system": "XFS",
            "kind": "HDD",
            "is_read_only": True,
        },
        {  # mounted twice on one point: the later (visible) one counts
            "name": "/dev/sdb1",
            "mount_point": "/media/usb",
            "file_system": "VFAT",
            "kind": "HDD",
            "is_read_only": True,
            "is_removable": True,
        },
    ]


def test_mountinfo_names_dev_root_and_falls_back_for_btrfs(tmp_path: Path) -> None:
    host = _tree(
        tmp_path,
        {
            "proc/self/mountinfo": (
                "22 1 179:2 / / ro,relatime shared:1 - ext4 /dev/root rw\n"
                "23 22 0:31 / /home rw,relatime shared:2 - btrfs /dev/nvme0n1p3 rw,ssd\n"
                "24 22 0:5 / /dev rw shared:3 - devtmpfs devtmpfs rw\n"
            ),
            "proc/diskstats": (
                " 179       0 mmcblk0 1 2 3 4 5 6 7 8 9 10 11\n"
                " 179       2 mmcblk0p2 1 2 3 4 5 6 7 8 9 10 11\n"
            ),
            "sys/block/mmcblk0/queue/rotational": "0\n",
            "sys/block/mmcblk0/removable": "0\n",
            "sys/block/mmcblk0/mmcblk0p2/partition": "2\n",
            "sys/block/nvme0n1/queue/rotational": "0\n",
            "sys/block/nvme0n1/nvme0n1p3/partition": "3\n",
        },
    )
    assert arrays.mounts(host)["mounts"] == [
        {
            "name": "/dev/root",
            "mount_point": "/",
            "file_system": "EXT4",
            "kind": "SSD",
            "is_read_only": True,  # read-only mount of a read-write superblock
            "is_removable": False,
        },
        {
            "name": "/dev/nvme0n1p3",
            "mount_point": "/home",
            "file_system": "BTRFS",
            "kind": "SSD",
            "is_read_only": False,
        },
    ]


def test_interfaces_bonds_speed_and_unmatched_addresses(tmp_path: Path) -> None:
    fib_trie = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.1.2.3
        /32 host LOCAL
     |-- 203.0.113.9
        /32 host LOCAL
     |-- 10.1.2.0
        /24 link UNICAST
"""
    host = _tree(
        tmp_path,
        {
            "proc/net/fib_trie": fib_trie,
            # 10.1.2.0/24 is on bond0; nothing says where 203.0.113.9 lives
            "proc/net/route": (
                "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
                "bond0\t0002010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
                "bond0\t00000000\t0102010A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                "eth9\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n"  # not up
            ),
            "sys/class/net/bonding_masters": "bond0\n",
            "sys/class/net/bond0/operstate": "up\n",
            "sys/class/net/bond0/speed": "2000\n",
            "sys/class/net/eth1/operstate": "down\n",
        },
    )
    fields = collect(host).fields
    assert fields["interfaces"] == [
        {
            "name": "bond0",
            "operstate": "UP",
            "speed": 2_000_000_000,
            "ip_addresses": [{"interface_name": "bond0", "ip_address": "10.1.2.3"}],
        },
        {"name": "eth1", "operstate": "DOWN"},
    ]
    assert fields["bonds"] == [{"name": "bond0", "status": "UP"}]
    assert [r["destination"] for r in fields["routes"]] == ["10.1.2.0/24", "default"]
    assert fields["routes"][1]["gateway"] == "10.1.2.1"
    assert fields["routes"][1]["metric"] == 100


def test_thermal_zone_without_temperature_and_several_trips(tmp_path: Path) -> None:
    zone = "sys/class/thermal/thermal_zone3/"
    host = _tree(
        tmp_path,
        {
            zone + "type": "SEN1\n",  # no temp file: the sensor gives no reading
            zone + "trip_point_0_type": "critical\n",
            zone + "trip_point_0_temp": "105000\n",
            zone + "trip_point_1_type": "hot\n",
            zone + "trip_point_1_temp": "95500\n",
            zone + "trip_point_2_type": "critical\n",
            zone + "trip_point_2_temp": "100000\n",
            "sys/class/thermal/cooling_device0/type": "Processor\n",
        },
    )
    assert arrays.thermals(host) == {"thermals": [{"label": "SEN1", "critical_celcius": 100.0}]}


def test_a_garbled_file_costs_its_section_only(tmp_path: Path) -> None:
    host = _tree(
        tmp_path,
        {"proc/loadavg": "not numbers at all\n", "proc/uptime": "12.5 20.25\n"},
    )
    collected = collect(host)
    assert collected.failures == 1
    assert collected.fields == {"uptime_total_ms": 12500, "uptime_idle_ms": 20250}


def test_net_snmp_sections_pair_headers_and_values(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "snmp").write_text("Ip: Forwarding DefaultTTL\nIp: 1 63\n")
    assert proc.read_net_snmp(str(tmp_path)) == {"Ip": {"Forwarding": 1, "DefaultTTL": 63}}
    host = Host(procfs=str(tmp_path), sysfs=str(tmp_path))
    assert scalars.snmp(host) == {"snmp_ip_forwarding_enabled": True, "snmp_ip_default_ttl": 63}


# -- this machine ----------------------------------------------------------------------------


def test_this_machine() -> None:
    collected = collect(Host())
    fields = collected.fields
    assert collected.failures == 0
    with open("/proc/stat") as f:
        cpus = sum(1 for line in f if line.startswith("cpu") and line[3].isdigit())
    assert fields["cpu_count"] == cpus >= 1
    assert fields["memory_total_bytes"] > fields["memory_free_bytes"] > 0
    assert fields["uptime_total_ms"] > 0
    assert fields["kernel_btime"] > 1_000_000_000
    assert fields["load_average_max"] >= 1
    assert any(n["name"] == "lo" for n in fields["netdevs"])
    body = {
        "t": 1.0,
        "v": "test",
        "count_reclaim_failures": 0,
        "count_reclaimed_paths": 0,
        "count_record_failed": 0,
        "count_transmit_failures": 0,
        **fields,
    }
    assert_valid_snapshot(body)
