"""The request as our handlers see it, independent of the server interface
(RSGI in production, ASGI for tests and other servers)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson

from connector_telemetry.errors import InvalidJson, InvalidQuery, UnsupportedMediaType
from connector_telemetry.models import Principal

_NO_ARGS: Mapping[str, Any] = MappingProxyType({})


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class Request:
    __slots__ = (
        "args",
        "body",
        "headers",
        "method",
        "params",
        "path",
        "principal",
        "query_string",
    )

    def __init__(
        self, method: str, path: str, query_string: str, headers: Headers, body: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.params: dict[str, Any] = {}  # path parameters, converted (see api.route)
        self.args: Mapping[str, Any] = _NO_ARGS  # the route's query parameters, parsed
        self.principal: Principal | None = None

    @property
    def account_id(self) -> str:
        return str(self.params["account_id"])

    @property
    def connector_id(self) -> str:
        return str(self.params["connector_id"])

    def content_type(self) -> str:
        raw = self.headers.get("content-type") or "application/json"
        return str(raw).split(";", 1)[0].strip().lower()

    def ingest_type(self) -> str:
        """The Content-Type of an ingest body: a JSON array or NDJSON (415 otherwise)."""
        kind = self.content_type()
        if kind not in ("application/json", "application/x-ndjson"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json or application/x-ndjson, got {kind!r}"
            )
        return kind

    def json(self) -> Any:
        kind = self.content_type()
        if kind != "application/json" and not kind.endswith("+json"):
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {kind!r}")
        if not self.body.strip():
            raise InvalidJson("request body is empty; send a JSON object")
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidJson(f"request body is not valid JSON: {exc}") from exc

    def query(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            if key in found:
                raise InvalidQuery(f"query parameter {key!r} is given more than once")
            found[key] = value
        return found
