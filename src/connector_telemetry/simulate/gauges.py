"""The small numeric models the snapshots are made of: mean-reverting bounded walks
for gauges, monotone accumulators for counters, and the daily traffic curve."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from connector_telemetry.simulate.plan import DAY
from connector_telemetry.simulate.rng import Rng

#: the walks are tuned for this spacing; other intervals scale pull and step
_TUNED_FOR = 300.0


class Walk:
    """A gauge: each step pulls toward ``mean`` and adds noise, within ``[low, high]``.
    ``pull`` and ``step`` are per 5 minutes and scaled to the snapshot interval, so a
    day looks alike whether it is sampled every minute or every hour."""

    __slots__ = ("high", "low", "mean", "pull", "step", "value")

    def __init__(
        self,
        mean: float,
        low: float,
        high: float,
        pull: float,
        step: float,
        interval: float,
        value: float | None = None,
    ) -> None:
        scale = min(interval / _TUNED_FOR, 50.0)
        self.mean, self.low, self.high = mean, low, high
        self.pull = 1 - (1 - pull) ** scale
        self.step = step * math.sqrt(scale)
        self.value = mean if value is None else value

    def next(self, rng: Rng) -> float:
        v = self.value + self.pull * (self.mean - self.value) + rng.gauss(0, self.step)
        self.value = v = self.low if v < self.low else self.high if v > self.high else v
        return v


class Counters:
    """Cumulative counters: only ever added to (a negative amount is a bug), read as
    whole numbers, so every published value is >= the one before."""

    __slots__ = ("acc",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.acc = dict.fromkeys(names, 0.0)

    def add(self, name: str, amount: float) -> None:
        assert amount >= 0, (name, amount)
        self.acc[name] += amount

    def read(self, name: str) -> int:
        return int(self.acc[name])

    def items(self) -> dict[str, int]:
        return {name: int(value) for name, value in self.acc.items()}


class Daylight:
    """How busy a site is at ``t``: a business-day curve in its local time (the UTC
    offset at the start of the simulation; a DST change mid-run is ignored), quieter
    at weekends for most sites."""

    def __init__(self, timezone: str, at: float, weekend_factor: float) -> None:
        offset = datetime.fromtimestamp(at, UTC).astimezone(ZoneInfo(timezone)).utcoffset()
        self.offset = offset.total_seconds() if offset is not None else 0.0
        self.weekend_factor = weekend_factor

    def load(self, t: float) -> float:
        local = t + self.offset
        hour = (local % DAY) / 3600
        curve = math.sin(math.pi * (hour - 7) / 14) if 7 < hour < 21 else 0.0
        weekday = (int(local // DAY) + 4) % 7  # 0 = Sunday (1970-01-01 was a Thursday)
        factor = self.weekend_factor if weekday in (0, 6) else 1.0
        return (0.12 + 0.88 * curve) * factor


def chance(rng: Rng, per_5min: float, interval: float) -> bool:
    """An event with probability ``per_5min`` per five minutes, at this interval."""
    return rng.random() < min(1.0, per_5min * interval / _TUNED_FOR)
