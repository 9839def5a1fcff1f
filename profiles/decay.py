"""Exact decayed sums, so a profile kept up to date event by event equals one
recomputed from the whole history, bit for bit.

A contribution decays as 0.5 ** ((now - ts) / half_life) = 2 ** (ts / h) * 2 ** (-now / h).
The first factor (`growth`) does not depend on `now`, so sums of it can be kept while
`now` moves. Each growth is a float times a power of two, held as an exact integer:
a sum of them is the same whatever order the events arrived in, and is rounded to a
float only once, when a profile is read (`Clock.share`), the same way on every path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FRACTION_BITS = 52  # 2 ** frac in [1, 2) has at most 52 fraction bits: times 2 ** 52 it is an integer


@dataclass(frozen=True)
class Decay:
    half_life_ms: float

    def growth(self, ts: int) -> int:
        """2 ** (ts / half_life), times 2 ** FRACTION_BITS, as an exact integer (ts >= 0)."""
        exponent = ts / self.half_life_ms
        whole = math.floor(exponent)
        return int((2.0 ** (exponent - whole)) * (1 << FRACTION_BITS)) << whole

    def clock(self, now_ms: int) -> "Clock":
        exponent = now_ms / self.half_life_ms
        whole = math.floor(exponent)
        return Clock(scale=1 << (whole + FRACTION_BITS), remainder=2.0 ** -(exponent - whole))


@dataclass(frozen=True)
class Clock:
    """Reads exact growth sums at one `now`: value = unit * (sum / scale) * remainder."""

    scale: int  # 2 ** (floor(now / h) + FRACTION_BITS)
    remainder: float  # 2 ** -(frac(now / h)), in (0.5, 1]

    def share(self, growth_sum: int) -> float:
        """The sum decayed to the start of now's half-life, correctly rounded (int / int is)."""
        return growth_sum / self.scale

    def contribution(self, unit: float, growth: int) -> float:
        """One event's contribution: unit (type weight x rating signal x tag factor) x decay."""
        return unit * self.share(growth) * self.remainder
