"""Every setting in one table, built once into a frozen ``Settings`` and passed down.

Nothing reads the environment at import time: ``Settings.from_env`` is called by
the CLI, and tests build ``Settings(...)`` directly. A test fails when a setting
is missing from the README. Each setting's rule (``check``) holds alike for its
``CTEL_<NAME>`` variable and its command-line flag; a value that breaks it is a
``ConfigError`` naming where the value came from.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from connector_telemetry.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error")


def _whole(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("must be a number") from None


def _at_least(low: float, meaning: str = "") -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not math.isfinite(value) or value < low:
            raise ValueError(f"must be {low:g} or more {meaning}".rstrip())

    return check


def _above_zero(value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a number above 0")


def _check_db(value: str) -> None:
    if not value.strip():
        raise ValueError("must be a SQLite file path or a postgresql:// URL, not empty")


def _check_host(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            "must be an IP address: 127.0.0.1 (this machine only), 0.0.0.0 (every IPv4 "
            "interface), ::1, :: or one of this machine's addresses"
        ) from None


def _check_port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError("must be a TCP port from 1 to 65535")


def _check_prefix(value: str) -> None:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError("must start with / and not end with / (like /client/v4), or be empty")


def _check_log_level(value: str) -> None:
    if value not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))


def _switch(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError("must be 1 or 0 (true/false, on/off, yes/no)")


def _any(value: Any) -> None:
    pass


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    #: Raises ``ValueError`` (what the value must be) when a parsed value breaks the rule.
    check: Callable[[Any], None] = _any

    @property
    def variable(self) -> str:
        return "CTEL_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def parse_proxies(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``10.0.0.1, 10.1.0.0/16`` -> networks; raises ValueError naming a bad entry."""
    out = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(out)


def _check_metrics(value: str) -> None:
    if value not in ("token", "public", "off"):
        raise ValueError("must be token, public or off")


def _check_log_format(value: str) -> None:
    if value not in ("text", "json"):
        raise ValueError("must be text or json")


def _check_proxies(value: str) -> None:
    parse_proxies(value)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "db",
        "ctel.db",
        "SQLite database file (created and migrated on start), or a PostgreSQL URL "
        "(`postgresql://user:password@host:5432/dbname`).",
        str,
        _check_db,
    ),
    Setting("host", "127.0.0.1", "Address `ctel serve` listens on.", str, _check_host),
    Setting("port", 8787, "TCP port `ctel serve` listens on.", _whole, _check_port),
    Setting(
        "workers",
        0,
        "Server worker processes; 0 means one per CPU core.",
        _whole,
        _at_least(0, "(0 means one per CPU core)"),
    ),
    Setting("prefix", "/client/v4", "Path prefix the API is served under.", str, _check_prefix),
    Setting(
        "max_batch_events",
        10_000,
        "Most events one ingest request may carry.",
        _whole,
        _at_least(1),
    ),
    Setting(
        "max_body_bytes",
        64 * 1024 * 1024,
        "Largest request body accepted, in bytes.",
        _whole,
        _at_least(1),
    ),
    Setting(
        "auth_cache_seconds",
        5.0,
        "How long a verified credential is reused without a database lookup. Any change "
        "to the credential tables (revoke, new token) empties the cache at once; 0 disables it.",
        _number,
        _at_least(0),
    ),
    Setting(
        "busy_timeout_ms",
        10_000,
        "How long SQLite waits for a lock before failing.",
        _whole,
        _at_least(0),
    ),
    Setting(
        "retention_days",
        0.0,
        "Purge events and snapshots recorded more than this many days ago; 0 keeps all.",
        _number,
        _at_least(0),
    ),
    Setting(
        "pool_min_size",
        1,
        "PostgreSQL: connections each process keeps open for writes.",
        _whole,
        _at_least(0),
    ),
    Setting(
        "pool_max_size",
        4,
        "PostgreSQL: most connections each process opens for writes.",
        _whole,
        _at_least(1),
    ),
    Setting(
        "pool_timeout_seconds",
        10.0,
        "PostgreSQL: how long a write waits for a pooled connection (or a reconnect) "
        "before answering 503.",
        _number,
        _above_zero,
    ),
    Setting(
        "read_connections",
        4,
        "PostgreSQL: reads each server process keeps in flight at once, each on a "
        "connection (and thread) of its own; 0: one read connection, reads answered inline "
        "on the event loop, one at a time.",
        _whole,
        _at_least(0),
    ),
    Setting(
        "read_pipeline",
        True,
        "PostgreSQL: Get Event, Get latest Events and List Events are read on the event "
        "loop, several queries in flight on one connection (libpq's pipeline mode), "
        "instead of on the read threads (issue 13); 0: on the read threads.",
        _switch,
    ),
    Setting(
        "statement_timeout_ms",
        60_000,
        "PostgreSQL: longest any one statement may run before it is cancelled (503); 0 disables.",
        _whole,
        _at_least(0, "(0 disables the limit)"),
    ),
    Setting(
        "log_level",
        "info",
        "How much ctel logs: debug (also the full traceback of any failure), info, "
        "warning or error.",
        str.lower,
        _check_log_level,
    ),
    Setting(
        "metrics",
        "token",
        "ctel's own metrics at /metrics: token (any valid API token may scrape), public "
        "(no credentials) or off (no route, nothing counted).",
        str.lower,
        _check_metrics,
    ),
    Setting(
        "log_format",
        "text",
        "How ctel logs: text (lines for people; requests not logged one by one) or json "
        "(one JSON object per line, and one per request: id, route, status, duration, ids, "
        "bytes; never a credential or a body).",
        str.lower,
        _check_log_format,
    ),
    Setting(
        "shutdown_timeout_seconds",
        30.0,
        "Longest `ctel serve` takes to stop after SIGTERM or SIGINT, whatever the store's "
        "state: in-flight requests finish or are answered 503 by then.",
        _number,
        _above_zero,
    ),
    Setting(
        "header_timeout_seconds",
        10.0,
        "Longest a client may take to send a request's headers (slowloris) before its "
        "connection is closed.",
        _number,
        _above_zero,
    ),
    Setting(
        "max_header_bytes",
        65_536,
        "Largest request head (request line and headers) accepted, in bytes; larger is "
        "refused and the connection closed.",
        _whole,
        _at_least(8192),
    ),
    Setting(
        "body_timeout_seconds",
        30.0,
        "Longest a client may take to send a request's body once its headers are in "
        "(408 after it).",
        _number,
        _above_zero,
    ),
    Setting(
        "backlog",
        1024,
        "Connections the kernel queues for `ctel serve` before it accepts them.",
        _whole,
        _at_least(1),
    ),
    Setting(
        "max_concurrent_requests",
        0,
        "Requests each worker process serves at once; further connections wait in the "
        "backlog. 0: backlog / workers (granian's default).",
        _whole,
        _at_least(0, "(0: backlog / workers)"),
    ),
    Setting(
        "auth_failures_per_minute",
        60,
        "Failed authentications one client address may make per minute (per worker) "
        "before further failures are answered 429; valid credentials are never slowed; "
        "0 disables.",
        _whole,
        _at_least(0, "(0 disables the limit)"),
    ),
    Setting(
        "trusted_proxies",
        "",
        "Comma-separated IP addresses or networks of reverse proxies whose "
        "X-Forwarded-For names the client address; empty: the connection's peer is the client.",
        str,
        _check_proxies,
    ),
    Setting(
        "streams",
        True,
        "Live streams (server-sent events, issue 10): 1 serves them, 0 leaves their routes "
        "out (404 like any unknown path).",
        _switch,
    ),
    Setting(
        "stream_heartbeat_seconds",
        15.0,
        "How often an idle live stream sends a comment line (`: keep-alive`), so that "
        "proxies do not close it.",
        _number,
        _above_zero,
    ),
    Setting(
        "stream_buffer_bytes",
        1024 * 1024,
        "Most bytes of messages a live stream holds for a client that reads slower than "
        "items arrive; past it the stream reads the feed at the client's pace instead.",
        _whole,
        _at_least(1),
    ),
    Setting(
        "test_mode",
        False,
        "Test mode (`serve --test-mode`): the test API under /_ctel/ (reset, faults, rate "
        "limit, request journal, clock) for test suites; only on a database created in test "
        "mode. Never in production.",
        _switch,
    ),
)


@dataclass(frozen=True)
class Settings:
    db: str = "ctel.db"
    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 0
    prefix: str = "/client/v4"
    max_batch_events: int = 10_000
    max_body_bytes: int = 64 * 1024 * 1024
    auth_cache_seconds: float = 5.0
    busy_timeout_ms: int = 10_000
    retention_days: float = 0.0
    pool_min_size: int = 1
    pool_max_size: int = 4
    pool_timeout_seconds: float = 10.0
    read_connections: int = 4
    read_pipeline: bool = True
    statement_timeout_ms: int = 60_000
    log_level: str = "info"
    metrics: str = "token"
    log_format: str = "text"
    shutdown_timeout_seconds: float = 30.0
    header_timeout_seconds: float = 10.0
    max_header_bytes: int = 65_536
    body_timeout_seconds: float = 30.0
    backlog: int = 1024
    max_concurrent_requests: int = 0
    auth_failures_per_minute: int = 60
    trusted_proxies: str = ""
    streams: bool = True
    stream_heartbeat_seconds: float = 15.0
    stream_buffer_bytes: int = 1024 * 1024
    test_mode: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``CTEL_<NAME>`` variables, then explicit overrides (CLI flags,
        named ``--<name>`` in errors). Every value is checked against its setting's rule."""
        unknown = set(overrides) - {s.name for s in SETTINGS}
        if unknown:
            raise TypeError(f"not settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.variable)
            override = overrides.get(setting.name)
            try:
                if override is not None:
                    where = f"{setting.flag} {override}"
                    setting.check(override)
                    values[setting.name] = override
                elif raw is not None:
                    where = f"{setting.variable}={raw!r}"
                    values[setting.name] = setting.parse(raw)
                    setting.check(values[setting.name])
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return cls(**values)

    @staticmethod
    def sources(environ: Mapping[str, str], **overrides: Any) -> dict[str, str]:
        """Where each setting of ``from_env(environ, **overrides)`` came from: ``flag``,
        ``environment`` or ``default``."""
        return {
            s.name: "flag"
            if overrides.get(s.name) is not None
            else "environment"
            if s.variable in environ
            else "default"
            for s in SETTINGS
        }

    @property
    def debug(self) -> bool:
        return self.log_level == "debug"

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


assert [f.name for f in fields(Settings)] == [s.name for s in SETTINGS]
assert all(getattr(Settings(), s.name) == s.default for s in SETTINGS)
