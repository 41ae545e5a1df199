"""``/healthz`` (the process answers) and ``/readyz`` (the store is reachable and its
schema current), at the server's root (outside the API prefix) and without credentials,
for load balancers. Never cached; HEAD answers as GET without a body."""

from __future__ import annotations

from typing import Any

from connector_telemetry.api.context import Context
from connector_telemetry.api.request import Request
from connector_telemetry.api.route import Route
from connector_telemetry.errors import Unavailable

_STATUS = {"type": "string"}


def routes(ctx: Context) -> list[Route]:
    store = ctx.store

    def healthz(req: Request) -> Any:
        return {"status": "alive"}

    def readyz(req: Request) -> Any:
        try:
            store.ping()
            version = store.schema_version()
        except Exception as exc:  # any failure to reach the store means "not ready"
            raise Unavailable(f"store unreachable: {type(exc).__name__}") from exc
        if version != store.known_schema_version:
            raise Unavailable(
                f"schema version {version}, this server needs {store.known_schema_version}"
            )
        return {"status": "ready", "schema_version": version}

    common: dict[str, Any] = {
        "mount": "root",
        "head": True,
        "headers": (("cache-control", "no-store"),),
    }
    return [
        Route(
            "GET",
            "/healthz",
            healthz,
            "public",
            "healthz",
            "Liveness",
            result={"type": "object", "properties": {"status": _STATUS}},
            **common,
        ),
        Route(
            "GET",
            "/readyz",
            readyz,
            "public",
            "readyz",
            "Readiness",
            result={
                "type": "object",
                "properties": {"status": _STATUS, "schema_version": {"type": "integer"}},
            },
            **common,
        ),
    ]
