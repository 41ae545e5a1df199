"""Where the agent reads: the procfs and sysfs roots, statvfs for mount sizes, and the
USER_HZ tick rate, bundled as a :class:`Host` that tests point at a fixture tree."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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


def statvfs_under(rootfs: str) -> Callable[[str], StatvfsResult | None]:
    """statvfs of mount points as seen from a root other than ``/`` (the host's root
    filesystem mounted into a container, say, at ``/host``)."""
    if rootfs in ("", "/"):
        return _host_statvfs
    return lambda mount_point: _host_statvfs(os.path.join(rootfs, mount_point.lstrip("/")))


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
