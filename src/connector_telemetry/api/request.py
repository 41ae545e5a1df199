"""The request as our handlers see it, independent of the server interface
(RSGI in production, ASGI for tests and other servers)."""

from __future__ import annotations

import zlib
from typing import Any, Protocol
from urllib.parse import parse_qsl

from connector_telemetry.errors import (
    BadRequest,
    InvalidJson,
    InvalidQuery,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from connector_telemetry.numbers import parse_query_number
from connector_telemetry.service import body as body_rules
from connector_telemetry.service.models import Principal


class Headers(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...


class Request:
    __slots__ = ("body", "headers", "method", "params", "path", "principal", "query_string")

    def __init__(
        self, method: str, path: str, query_string: str, headers: Headers, body: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = body
        self.params: dict[str, Any] = {}
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


def query_number(query: dict[str, str], name: str, *, required: bool) -> float | None:
    raw = query.get(name)
    if raw is None:
        if required:
            raise InvalidQuery(f"{name}: required query parameter (epoch seconds) is missing")
        return None
    value = parse_query_number(raw)
    if value is None:
        raise InvalidQuery(f"{name}: expected a number, got {raw!r}")
    return value


def query_range(query: dict[str, str]) -> tuple[float, float]:
    """The required ``from`` and ``to`` of a telemetry list."""
    t_from = query_number(query, "from", required=True)
    t_to = query_number(query, "to", required=True)
    assert t_from is not None and t_to is not None
    return t_from, t_to


def query_limit(query: dict[str, str], default: int, maximum: int) -> int:
    value = query_number(query, "limit", required=False)
    if value is None:
        return default
    if not value.is_integer() or not 1 <= value <= maximum:
        raise InvalidQuery(
            f"limit: must be a whole number from 1 to {maximum}, got {query['limit']!r}"
        )
    return int(value)


__all__ = ["BadRequest", "Request", "query_limit", "query_number", "query_range"]
