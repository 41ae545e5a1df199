"""The simulator's random numbers: ``random.Random`` restricted to its ``random()``.

Python promises that a seed and ``random()`` give the same sequence in every version;
``choice``, ``randint``, ``gauss`` and the rest may change between versions. Deriving
every draw from ``random()`` here keeps "same seed, same data" true across Python
upgrades. Each stream is seeded from a SHA-256 of the seed and a label, so a value
depends only on the seed, the connector and what it is for: never on the time, the
global ``random`` state, hashing order or how many other connectors are simulated.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Rng:
    __slots__ = ("random",)

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def randint(self, a: int, b: int) -> int:
        """A whole number in ``[a, b]``."""
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def gauss(self, mu: float, sigma: float) -> float:
        """Box-Muller, one value per call."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        return mu + sigma * radius * math.cos(2.0 * math.pi * self.random())

    def expovariate(self, rate: float) -> float:
        return -math.log(1.0 - self.random()) / rate

    def hex(self, digits: int) -> str:
        """``digits`` lowercase hex digits."""
        return "".join(f"{int(self.random() * 65536):04x}" for _ in range((digits + 3) // 4))[
            :digits
        ]


def derive_rng(seed: int, *labels: object) -> Rng:
    text = ":".join(["ctel-simulate", str(seed), *(str(label) for label in labels)])
    return Rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:16], "big"))
