"""The opaque keyset cursors of the telemetry lists: the last key of a page and a
fingerprint of the query it was issued for (a cursor only continues that query)."""

from __future__ import annotations

import base64
import hashlib

import orjson

from connector_telemetry.errors import InvalidCursor


def fingerprint(*query: object) -> bytes:
    return hashlib.blake2b(orjson.dumps([repr(q) for q in query]), digest_size=6).digest()


def encode_cursor(query: bytes, key: tuple[float, ...]) -> str:
    raw = orjson.dumps(list(key)) + b"|" + query
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: bytes, cursor: str, size: int) -> tuple[float, ...]:
    """The key a cursor continues after; 400 unless we issued it for this very query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body, mark, issued_for = raw[:-7], raw[-7:-6], raw[-6:]
        key = tuple(float(x) for x in orjson.loads(body))
        if mark != b"|" or len(key) != size:
            raise ValueError
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor(f"cursor: not a cursor issued by this service: {cursor!r}") from exc
    if issued_for != query:
        raise InvalidCursor("cursor: issued for another query; repeat the same from, to and k")
    return key
