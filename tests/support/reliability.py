"""Shared by the reliability tests (crash safety, fuzzing, soak).

Sizes: CI runs the reduced size; ``CTEL_FULL=1`` in the environment runs the full size
(``CTEL_FULL=1 python -m pytest tests/reliability -q``).

"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support.server import LiveServer

FULL = os.environ.get("CTEL_FULL", "").strip() not in ("", "0")


def size(ci: int, full: int) -> int:
    """The CI size, or the full one under ``CTEL_FULL=1``."""
    return full if FULL else ci


# -- processes --------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (granian's workers, and anything they started)."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < 1000:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def hard_kill(server: LiveServer) -> list[int]:
    """SIGKILL the ``ctel serve`` master and all its workers, as a power cut would; returns
    the pids killed. Waits (bounded) until none of them runs any more."""
    pids = descendants(server.process.pid)
    for pid in [server.process.pid, *pids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(10)
    server.log.close()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes survived SIGKILL: {pids}"
        time.sleep(0.01)
    return [server.process.pid, *pids]


def vm_rss_kb(pid: int) -> int:
    """Current resident set size (VmRSS) of a live process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# -- reporting --------------------------------------------------------------------------

_REPORT = pytest.StashKey[list[str]]()


class _Summary:
    def __init__(self, lines: list[str]):
        self.lines = lines

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("reliability measurements")
        for line in self.lines:
            terminalreporter.write_line(line)


def report(config: pytest.Config, line: str) -> None:
    """A line for the 'reliability measurements' section at the end of the run."""
    lines = config.stash.get(_REPORT, None)
    if lines is None:
        lines = config.stash[_REPORT] = []
        config.pluginmanager.register(_Summary(lines), "ctel-reliability-summary")
    lines.append(line)
