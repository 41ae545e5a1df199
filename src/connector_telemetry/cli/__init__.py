"""``ctel``: serve the API, manage accounts and credentials on the same store (``admin``),
and use the API as a client of any Cloudflare-compatible server (``client``, ``telemetry``).

Modules: ``admin`` (the parser, ``main``, serve/db/account/token commands), ``client``
(global options, the SDK client, errors, connectors and interrupts), ``telemetry``
(events and snapshots), ``tail`` (the live stream and its polling fallback), ``output``
(tables, JSON, NDJSON), ``times`` (epoch, RFC 3339, relative durations)."""

from connector_telemetry.cli.admin import build_parser, main

__all__ = ["build_parser", "main"]
