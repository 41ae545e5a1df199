"""The request as our handlers see it, independent of the server interface
(RSGI in production, ASGI for tests and other servers)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl

from connector_telemetry.errors import (
    InvalidJson,
    InvalidQuery,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from connector_telemetry.models import Principal
from connector_telemetry.service import body as body_rules

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
        return body_rules.read_json(self.body)

    def query(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            if key in found:
                raise InvalidQuery(f"query parameter {key!r} is given more than once")
            found[key] = value
        return found


def inflated(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as it was before its ``Content-Encoding``: identity, or gzip (one member or
    several), inflated only up to ``limit`` bytes, so that a decompression bomb costs no more
    than the largest body accepted (413 past it); 415 for any other encoding."""
    name = (encoding or "identity").strip().lower()
    if name == "identity" or not raw:
        return raw
    if name not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(  # Accept-Encoding: what would do (RFC 9110, 12.5.3)
            f"Content-Encoding {encoding!r} is not supported; send gzip or an uncompressed body",
            headers=[("accept-encoding", "gzip")],
        )
    parts: list[bytes] = []
    size = 0
    pending = raw
    try:
        while pending:
            member = zlib.decompressobj(wbits=31)  # gzip framing only
            while pending and not member.eof:
                part = member.decompress(pending, limit + 1 - size)
                parts.append(part)
                size += len(part)
                if size > limit:
                    raise PayloadTooLarge(f"request body over {limit} bytes once decompressed")
                pending = member.unconsumed_tail
            if not member.eof:
                raise InvalidJson("request body (Content-Encoding: gzip) is truncated")
            pending = member.unused_data
    except zlib.error as exc:
        raise InvalidJson(f"request body is not valid gzip (Content-Encoding): {exc}") from None
    return b"".join(parts)
