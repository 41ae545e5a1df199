"""Numbers as the official SDKs write them, and as we write them back.

The Python SDK writes path and query numbers with ``str()`` (``1700000000.0``,
``1e+16``), Go with ``%v`` (``1.7e+09``), JavaScript with ``String()``
(``1.25e-7``). An event id ``{t}.{n}`` is one path segment with several dots,
so we try every split and keep the ones where both halves are numbers.
"""

from __future__ import annotations

import math
import re

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
#: Whole floats inside this bound are written as JSON integers (orjson's 64-bit range).
_INT_LIMIT = float(2**63)


def parse_decimal(text: str) -> float | None:
    """A finite decimal number as the SDKs write it, or None."""
    if not _DECIMAL.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def event_key_candidates(segment: str) -> list[tuple[float, float]]:
    """Every ``(t, n)`` an ``{event_t}.{event_n}`` segment can mean, most likely first.

    ``1700000000.5.3`` is either (1700000000.5, 3) or (1700000000, 5.3); a whole
    ``n`` is preferred, since sequence numbers are whole in practice.
    """
    head, sep, tail = segment.partition(".")
    if sep and head.isdigit() and tail.isdigit() and head.isascii() and tail.isascii():
        return [(float(head), float(tail))]  # the common form, 1700000000.3
    found: list[tuple[float, float]] = []
    start = 0
    while True:
        dot = segment.find(".", start)
        if dot < 0:
            break
        start = dot + 1
        t = parse_decimal(segment[:dot])
        n = parse_decimal(segment[dot + 1 :])
        if t is not None and n is not None and (t, n) not in found:
            found.append((t, n))
    found.sort(key=lambda tn: not tn[1].is_integer())
    return found


def parse_query_number(text: str) -> float | None:
    """A query number: a decimal as above, or ``inf`` / ``-inf`` (Python's ``str``)."""
    lowered = text.strip().lower()
    if lowered in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if lowered in ("-inf", "-infinity"):
        return -math.inf
    return parse_decimal(text.strip())


def wire(value: float) -> int | float:
    """A number as we write it in JSON: whole numbers as integers."""
    if -_INT_LIMIT < value < _INT_LIMIT and value.is_integer():
        return int(value)
    return value
