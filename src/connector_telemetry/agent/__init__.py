"""The on-host reporter: reads a Linux host's telemetry from /proc and /sys and sends it,
with its lifecycle events, to a ctel server (or Cloudflare-compatible endpoint).

It depends on the standard library and httpx only, never on the server's modules.

- :mod:`.procfs`, :mod:`.sysfs`: one reader per kernel file, under a replaceable root
- :mod:`.snapshot`: those readings as a Snapshot object (reference §4.10.1)
- :mod:`.spool`: the on-disk queue every record passes through
- :mod:`.client`: HTTP, and what each answer means for a spooled record
- :mod:`.interrupts`: running the operator's command for reboot/restart/shutdown
- :mod:`.runner`: the loop; :mod:`.cli`: ``ctel agent``
"""

from connector_telemetry.agent.cli import add_arguments, main, run
from connector_telemetry.agent.snapshot import Host, collect
from connector_telemetry.agent.spool import Spool

# Agent (runner) and Client (client) need httpx: import them from their modules.
__all__ = ["Host", "Spool", "add_arguments", "collect", "main", "run"]
