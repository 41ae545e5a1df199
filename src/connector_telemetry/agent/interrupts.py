"""Acting on interrupts (reference §4.8): reboot, restart or shutdown.

The agent never acts on its own: each kind runs the command the operator configured
(``--on-reboot "systemctl reboot"``), through ``/bin/sh -c`` with a timeout, or is
only logged when none is. The interrupt's details reach the command as environment
variables (``CTEL_INTERRUPT_ID``, ``CTEL_INTERRUPT_KIND``, ``CTEL_INTERRUPT_PURGE``),
never spliced into the command line, since they come from the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KINDS = ("reboot", "restart", "shutdown")


@dataclass(frozen=True)
class Interrupt:
    id: str
    kind: str  # one of KINDS
    purge: bool


def parse_interrupts(result: Any) -> list[Interrupt]:
    """The interrupts of a list answer; malformed items are logged and skipped."""
    out = []
    for item in result if isinstance(result, list) else []:
        kinds = [k for k in KINDS if isinstance(item, dict) and isinstance(item.get(k), dict)]
        if len(kinds) != 1:
            log.error("ignoring an interrupt without exactly one of %s: %r", KINDS, item)
            continue
        purge = item[kinds[0]].get("purge") is True
        out.append(Interrupt(str(item.get("id", "")), kinds[0], purge))
    return out


#: commands still running when the agent stopped waiting for them (kept referenced so
#: they are not reported as leaked; the agent is stopping anyway)
_detached: list[subprocess.Popen[bytes]] = []


def run_interrupt(
    interrupt: Interrupt,
    commands: Mapping[str, str | None],
    timeout: float,
    stopping: threading.Event | None = None,
) -> int | None:
    """Run the command configured for the interrupt's kind and wait for it; its exit
    status, or None when there is no command (only logged), it could not start, it ran
    past ``timeout`` (then its whole process group is killed), or ``stopping`` was set
    meanwhile. The last case is what ``--on-restart "systemctl restart ctel-agent"``
    looks like from inside: the command waits for the agent to stop, so the agent stops
    waiting for the command."""
    command = commands.get(interrupt.kind)
    what = f"{interrupt.kind} interrupt {interrupt.id or '?'} (purge={interrupt.purge})"
    if not command:
        log.warning(
            "%s received; no --on-%s command configured, doing nothing", what, interrupt.kind
        )
        return None
    log.warning("%s received; running: %s", what, command)
    env = {
        **os.environ,
        "CTEL_INTERRUPT_ID": interrupt.id,
        "CTEL_INTERRUPT_KIND": interrupt.kind,
        "CTEL_INTERRUPT_PURGE": "1" if interrupt.purge else "0",
    }
    try:
        # shell: the operator's own command line; its own session, so a Ctrl-C meant for
        # the agent does not hit it and a timeout can kill everything it started
        process = subprocess.Popen(command, shell=True, env=env, start_new_session=True)
    except OSError as e:
        log.error("%s: command could not start: %s", what, e)
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = process.wait(0.1)
            break
        except subprocess.TimeoutExpired:
            pass
        if stopping is not None and stopping.is_set():
            log.warning("%s: stopping while its command still runs; not waiting for it", what)
            _detached.append(process)
            return None
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.error("%s: command still running after %s s; killed", what, timeout)
            return None
    if status != 0:
        log.error("%s: command exited with status %d", what, status)
    return status
