"""A host's telemetry as a Snapshot object (reference §4.10.1).

:func:`collect` calls the /proc and /sys readers and maps what they found to the
reference's field names, one section per reader. A section whose file the host does
not have contributes nothing; a section whose reader fails (unreadable file,
unexpected format) contributes nothing either and is counted in ``failures``, so one
odd file never costs the whole snapshot. The core fields (``t``, ``v``, the
``count_*`` counters) belong to the agent and are added by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from connector_telemetry.agent.arrays import disks, interfaces, mounts, netdevs, routes, thermals
from connector_telemetry.agent.host import Fields, Host, StatvfsResult, statvfs_under
from connector_telemetry.agent.scalars import cpu_and_kernel, load, memory, pressure, snmp, uptime

__all__ = ["SECTIONS", "Collected", "Fields", "Host", "StatvfsResult", "collect", "statvfs_under"]

log = logging.getLogger(__name__)

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
