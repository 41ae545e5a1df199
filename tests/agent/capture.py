"""Capture a fixture tree from this machine: the /proc and /sys files the agent reads
(contents, never symlinks), the statvfs results of the mounts it reports, and the
USER_HZ tick rate. Usage: ``python tests/agent/capture.py tests/agent/fixtures/NAME``.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import sys
import time

from connector_telemetry.agent import Host, arrays
from connector_telemetry.agent.procfs import read_text

PROC_FILES = [
    "stat",
    "loadavg",
    "uptime",
    "meminfo",
    "diskstats",
    "mounts",
    "1/mountinfo",
    "pressure/cpu",
    "pressure/io",
    "pressure/memory",
    "net/dev",
    "net/snmp",
    "net/route",
    "net/fib_trie",
    "net/if_inet6",
]
SYS_PATTERNS = [
    "class/net/bonding_masters",
    "class/net/*/operstate",
    "class/net/*/speed",
    "class/net/*/flags",
    "class/thermal/thermal_zone*/type",
    "class/thermal/thermal_zone*/temp",
    "class/thermal/thermal_zone*/trip_point_*_type",
    "class/thermal/thermal_zone*/trip_point_*_temp",
    "block/*/removable",
    "block/*/queue/rotational",
    "block/*/dm/name",
    "block/*/*/partition",
]


def _copy(src: str, dest: str) -> None:
    text = read_text(src)
    if text is None:
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write(text)


def capture(dest: str, procfs: str = "/proc", sysfs: str = "/sys") -> None:
    for name in PROC_FILES:
        _copy(os.path.join(procfs, name), os.path.join(dest, "proc", name))
    for pattern in SYS_PATTERNS:
        for path in glob.glob(os.path.join(sysfs, pattern)):
            _copy(path, os.path.join(dest, "sys", os.path.relpath(path, sysfs)))
    host = Host(procfs=procfs, sysfs=sysfs)
    statvfs = {}
    for mount in arrays.mounts(host).get("mounts", []):
        st = os.statvfs(mount["mount_point"])
        statvfs[mount["mount_point"]] = {
            f: getattr(st, f) for f in ("f_frsize", "f_blocks", "f_bavail", "f_files", "f_favail")
        }
    meta = {
        "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "clock_ticks": os.sysconf("SC_CLK_TCK"),
        "statvfs": statvfs,
    }
    with open(os.path.join(dest, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    capture(sys.argv[1])
