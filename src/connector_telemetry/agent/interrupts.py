"""Acting on interrupts (reference §4.8): reboot, restart or shutdown.

The agent never acts on its own: each kind runs the command the operator configured
(``--on-reboot "systemctl reboot"``), through ``/bin/sh -c`` with a timeout, or is
only logged when none is. The interrupt's details reach the command as environment
variables (``CTEL_INTERRUPT_ID``, ``CTEL_INTERRUPT_KIND``, ``CTEL_INTERRUPT_PURGE``),
never spliced into the command line, since they come from the network.
"""

from __future__ import annotations

import logging
import os
import subprocess
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


def run_interrupt(
    interrupt: Interrupt, commands: Mapping[str, str | None], timeout: float
) -> int | None:
    """Run the command configured for the interrupt's kind; its exit status, or None when
    there is no command (only logged), it timed out or could not start."""
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
        done = subprocess.run(  # shell: the operator's own command line
            command, shell=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        log.error("%s: command still running after %s s; killed", what, timeout)
        return None
    except OSError as e:
        log.error("%s: command could not start: %s", what, e)
        return None
    if done.returncode != 0:
        log.error("%s: command exited with status %d", what, done.returncode)
    return done.returncode
