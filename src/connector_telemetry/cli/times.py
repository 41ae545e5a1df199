"""Time options of the client commands: epoch seconds (``1700000000.5``), RFC 3339
(``2026-11-28T18:00:00Z``, ``2026-11-28 18:00+01:00``; no offset = local time) or a
duration before now (``90s``, ``10m``, ``2h``, ``3d``, ``1w``, ``1h30m``)."""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([smhdw]))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``text``; ``argparse.ArgumentTypeError`` saying what is accepted."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r}: not a time")
        return value
    if _DURATION.fullmatch(text):
        ago = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        return (time.time() if now is None else now) - ago
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: not a time (epoch seconds, RFC 3339 such as 2026-11-28T18:00:00Z, "
            "or a duration before now such as 2h, 10m, 1d)"
        ) from None
    return moment.timestamp()  # naive = local time


def relative(t: float, now: float | None = None) -> str:
    """``3m ago``, ``in 2h``, ``just now``."""
    delta = (time.time() if now is None else now) - t
    ahead, delta = delta < 0, abs(delta)
    if delta < 1:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if delta >= size:
            text = f"{int(delta // size)}{unit}"
            break
    return f"in {text}" if ahead else f"{text} ago"


def absolute(t: float) -> str:
    """Local time, to the millisecond, with the offset."""
    moment = datetime.fromtimestamp(t).astimezone()
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}"
        + (moment.strftime(" %z"))
    )
