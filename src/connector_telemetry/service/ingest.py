"""What event and snapshot ingest share: parsing and recording a body as one step, and
the opaque keyset cursors of the telemetry lists. (Reading the body: ``service.body``.)"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import TypeVar

import orjson

from connector_telemetry.errors import InvalidCursor
from connector_telemetry.service.models import IngestResult
from connector_telemetry.store.base import Store

T = TypeVar("T")


def record_body(
    parse: Callable[[bytes, str, int], list[T]],
    record: Callable[[Store, str, str, list[T]], IngestResult],
    store: Store,
    account_id: str,
    connector_id: str,
    body: bytes,
    content_type: str,
    max_items: int,
) -> IngestResult:
    """Parse and record an ingest body, as one step. The HTTP layer runs it on the writer
    thread: parsing there too (rather than on the event loop) measured ~15% more ingest,
    because the loop thread no longer holds the GIL while the writer, which gives it up
    around every row SQLite steps, waits to get it back."""
    return record(store, account_id, connector_id, parse(body, content_type, max_items))


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
