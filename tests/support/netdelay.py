"""The latency-adding TCP proxy of the benchmarks (``bench/netdelay.py``), for the tests
that put a network between ctel and PostgreSQL (issue 13)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # bench/ lives at the repository's root, beside tests/
    sys.path.append(_ROOT)

from bench.netdelay import NetDelay  # noqa: E402

__all__ = ["NetDelay"]
