"""Time as ctel reads and writes it: epoch seconds (``now``), and RFC 3339 strings in UTC
with microseconds for the API's timestamps.

In test mode (issue 11) the server's clock may be set or advanced: ``now`` is the real
time plus a process-wide offset, which a test-mode server sets from the store before
each request (api/testmode.py), so the event loop and the writer thread read the same
time. Outside test mode the offset is 0 and never set."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_offset = 0.0


def now() -> float:
    return time.time() + _offset


def real_now() -> float:
    """The real time, whatever the test clock says."""
    return time.time()


def offset() -> float:
    return _offset


def set_offset(seconds: float) -> None:
    global _offset
    _offset = seconds


def rfc3339(epoch: float | None = None) -> str:
    """``2026-11-26T07:08:06.123456Z``: RFC 3339, UTC, microseconds."""
    moment = datetime.fromtimestamp(now() if epoch is None else epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Parse an ISO 8601 / RFC 3339 time; a time without offset is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
