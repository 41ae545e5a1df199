"""Every setting in one table, built once into a frozen ``Settings`` and passed down.

Nothing reads the environment at import time: ``Settings.from_env`` is called by
the CLI, and tests build ``Settings(...)`` directly. A test fails when a setting
is missing from the README.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from connector_telemetry.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "db",
        "ctel.db",
        "SQLite database file (created and migrated on start), or a PostgreSQL URL "
        "(`postgresql://user:password@host:5432/dbname`).",
        str,
    ),
    Setting("host", "127.0.0.1", "Address `ctel serve` listens on.", str),
    Setting("port", 8787, "TCP port `ctel serve` listens on.", int),
    Setting("workers", 0, "Server worker processes; 0 means one per CPU core.", int),
    Setting("prefix", "/client/v4", "Path prefix the API is served under.", str),
    Setting("max_batch_events", 10_000, "Most events one ingest request may carry.", int),
    Setting("max_body_bytes", 64 * 1024 * 1024, "Largest request body accepted, in bytes.", int),
    Setting(
        "auth_cache_seconds",
        5.0,
        "How long a verified credential is reused without a database lookup. Any change "
        "to the credential tables (revoke, new token) empties the cache at once; 0 disables it.",
        float,
    ),
    Setting("busy_timeout_ms", 10_000, "How long SQLite waits for a lock before failing.", int),
    Setting(
        "retention_days",
        0.0,
        "Purge events and snapshots recorded more than this many days ago; 0 keeps all.",
        float,
    ),
    Setting("pool_min_size", 1, "PostgreSQL: connections each process keeps open for writes.", int),
    Setting("pool_max_size", 4, "PostgreSQL: most connections each process opens for writes.", int),
    Setting(
        "pool_timeout_seconds",
        10.0,
        "PostgreSQL: how long a write waits for a pooled connection (or a reconnect) "
        "before answering 503.",
        float,
    ),
    Setting(
        "statement_timeout_ms",
        60_000,
        "PostgreSQL: longest any one statement may run before it is cancelled (503); 0 disables.",
        int,
    ),
    Setting(
        "shutdown_timeout_seconds",
        30.0,
        "Longest `ctel serve` takes to stop after SIGTERM or SIGINT, whatever the store's "
        "state: in-flight requests finish or are answered 503 by then.",
        float,
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
    statement_timeout_ms: int = 60_000
    shutdown_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Defaults, then ``CTEL_<NAME>`` variables, then explicit overrides (CLI flags)."""
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get("CTEL_" + setting.name.upper())
            if raw is not None:
                try:
                    values[setting.name] = setting.parse(raw)
                except ValueError as exc:
                    raise ConfigError(f"CTEL_{setting.name.upper()}={raw!r}: {exc}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


assert [f.name for f in fields(Settings)] == [s.name for s in SETTINGS]
assert all(getattr(Settings(), s.name) == s.default for s in SETTINGS)
