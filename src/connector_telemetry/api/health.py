"""``/healthz`` (the process answers) and ``/readyz`` (the store is reachable and its
schema current), outside the API prefix and without credentials, for load balancers."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api import envelope
from connector_telemetry.api.context import Context
from connector_telemetry.errors import MethodNotAllowed, Unavailable

Response = tuple[int, list[tuple[str, str]], bytes]
_JSON = [("content-type", "application/json"), ("cache-control", "no-store")]


def healthz(ctx: Context) -> Response:
    return 200, _JSON, envelope.ok({"status": "alive"})


def readyz(ctx: Context) -> Response:
    store = ctx.store
    try:
        store.ping()
        version = store.schema_version()
    except Exception as exc:  # any failure to reach the store means "not ready"
        return _unavailable(f"store unreachable: {type(exc).__name__}")
    if version != store.known_schema_version:
        return _unavailable(
            f"schema version {version}, this server needs {store.known_schema_version}"
        )
    return 200, _JSON, envelope.ok({"status": "ready", "schema_version": version})


def _unavailable(message: str) -> Response:
    err = Unavailable(message)
    return err.status, _JSON + err.headers, envelope.error_body(err)


CHECKS: dict[str, Any] = {"/healthz": healthz, "/readyz": readyz}


def answer(ctx: Context, method: str, path: str) -> Response:
    if method not in ("GET", "HEAD"):
        err = MethodNotAllowed(
            f"method {method} is not allowed on {path}; allowed: GET", headers=[("allow", "GET")]
        )
        return err.status, _JSON + err.headers, envelope.error_body(err)
    status, headers, body = CHECKS[path](ctx)
    return status, headers, b"" if method == "HEAD" else body
