"""``ctel simulate``: realistic, reproducible connector histories, sent through the
public API.

Generation is pure (:func:`generate_fleet`: a :class:`SimConfig` in, create bodies,
events and snapshots out; the same config gives the same bytes) and separate from
sending (:func:`send_fleet` / :func:`simulate`, over any ``httpx.Client``). The
modules, in the order data flows: ``plan`` (settings, identities, releases),
``timeline`` (events and states), ``gauges`` + ``hardware`` + ``snapshots`` (the
snapshot model), ``fleet`` (putting it together), ``send`` + ``progress`` (HTTP),
``command`` (the CLI). Nothing here imports the server's modules, and httpx is only
imported when something is sent (so ``ctel`` starts fast for every other command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connector_telemetry.simulate.command import add_arguments, run
from connector_telemetry.simulate.fleet import SimConnector, generate_connector, generate_fleet
from connector_telemetry.simulate.plan import ConfigError, SimConfig, default_start
from connector_telemetry.simulate.progress import Progress

if TYPE_CHECKING:
    from connector_telemetry.simulate.send import SimulateError, api_base, send_fleet, simulate

_SEND = frozenset({"SimulateError", "api_base", "send_fleet", "simulate"})


def __getattr__(name: str) -> Any:
    if name in _SEND:
        from connector_telemetry.simulate import send

        return getattr(send, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "Progress",
    "SimConfig",
    "SimConnector",
    "SimulateError",
    "add_arguments",
    "api_base",
    "default_start",
    "generate_connector",
    "generate_fleet",
    "run",
    "send_fleet",
    "simulate",
]
