"""Moves against the market: a symbol's move set beside its benchmark's, and its own move net of it.

"Is this the stock or the whole market?" A symbol's benchmark (`TICKWATCH_BENCHMARKS`: by group, else by the
symbol's calendar) moved by m % over the same span; the symbol's sensitivity to it is β, so its *own* move is
its move minus β·m. Pure: the workers hand detection the benchmark's recent prices (`Track`, kept in Redis by
pipeline.detect.state), and β is a running regression in the symbol's detection state (`Beta`), folded as
ticks leave the window, so every batching folds the same returns.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

# β is sampled on returns at least this far apart: prices sampled more often than the benchmark's track (one
# point a second) would understate it (the Epps effect).
BETA_STEP_MS = 60_000
# Fewer returns than this (half an hour of minutes) and β is taken as 1: the symbol moves with its market.
MIN_RETURNS = 30
DEFAULT_BETA = 1.0
TRACK_RESOLUTION_MS = 1000


@dataclass
class Track:
    """A benchmark's recent prices, sorted by event time, at most one point per TRACK_RESOLUTION_MS."""

    ts: list[int] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)

    def price_at(self, t: int) -> float | None:
        """The last price at or before `t` (None before the track starts)."""
        i = bisect.bisect_right(self.ts, t) - 1
        return self.prices[i] if i >= 0 else None

    def move_pct(self, start: int, end: int) -> float | None:
        """The benchmark's move in % from `start` to `end`, None when the track does not cover `start`."""
        before, after = self.price_at(start), self.price_at(end)
        return None if before is None or after is None else (after / before - 1) * 100

    def add(self, points: Iterable[tuple[int, float]], horizon_ms: int) -> None:
        """Merge new (event time, price) points, keeping the last of each resolution step and `horizon_ms` of
        history (plus the point before it, so its start still has a price)."""
        for ts, price in points:
            i = bisect.bisect_right(self.ts, ts)
            if i and ts // TRACK_RESOLUTION_MS == self.ts[i - 1] // TRACK_RESOLUTION_MS:
                self.ts[i - 1], self.prices[i - 1] = ts, price  # the newest price of its step
                continue
            self.ts.insert(i, ts)
            self.prices.insert(i, price)
        if self.ts:
            keep = max(0, bisect.bisect_left(self.ts, self.ts[-1] - horizon_ms) - 1)
            del self.ts[:keep], self.prices[:keep]

    def encode(self) -> bytes:
        return orjson.dumps([self.ts, self.prices])

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Track:
        if not raw:
            return cls()
        ts, prices = orjson.loads(raw)
        return cls(ts, prices)


@dataclass
class Beta:
    """A running regression through the origin of the symbol's log returns on its benchmark's, over steps of at
    least BETA_STEP_MS, each term weighted e^(-age/τ): β = Σ rₘ·rₛ / Σ rₘ²."""

    last_ts: int | None = None
    last_price: float = 0.0
    last_market: float = 0.0
    cross: float = 0.0
    market_squares: float = 0.0
    returns: int = 0

    def fold(self, ts: int, price: float, market: float | None, tau_ms: float) -> None:
        if market is None:
            return
        if self.last_ts is None:
            self.last_ts, self.last_price, self.last_market = ts, price, market
            return
        if ts - self.last_ts < BETA_STEP_MS:
            return
        decay = math.exp(-(ts - self.last_ts) / tau_ms)
        own, bench = math.log(price / self.last_price), math.log(market / self.last_market)
        self.cross = self.cross * decay + own * bench
        self.market_squares = self.market_squares * decay + bench * bench
        self.returns += 1
        self.last_ts, self.last_price, self.last_market = ts, price, market

    @property
    def value(self) -> float:
        """β, or DEFAULT_BETA until MIN_RETURNS returns in which the benchmark moved."""
        if self.returns < MIN_RETURNS or self.market_squares <= 0:
            return DEFAULT_BETA
        return self.cross / self.market_squares

    def to_list(self) -> list[Any]:
        return [self.last_ts, self.last_price, self.last_market, self.cross, self.market_squares, self.returns]

    @classmethod
    def from_list(cls, values: Sequence[Any] | None) -> Beta:
        if not values:
            return cls()
        last_ts, price, market, cross, squares, returns = values
        return cls(last_ts, float(price), float(market), float(cross), float(squares), int(returns))


@dataclass(frozen=True)
class Market:
    """What detection knows of a symbol's market: its benchmark's name and recent prices."""

    benchmark: str
    track: Track

    def context(self, ref_ts: int, ts: int, change_pct: float, beta: float) -> dict[str, Any]:
        """The anomaly's market fields for a move of `change_pct` from `ref_ts` to `ts` (none when the track does
        not reach back to `ref_ts`)."""
        moved = self.track.move_pct(ref_ts, ts)
        if moved is None:
            return {}
        return {
            "benchmark": self.benchmark,
            "market_change_pct": round(moved, 4),
            "own_change_pct": round(change_pct - beta * moved, 4),
            "beta": round(beta, 3),
        }

    def own_move(self, start_ts: int, start_price: float, ts: int, price: float, beta: float) -> float | None:
        """The own move in % from (start_ts, start_price) to (ts, price): what the `relative` rule judges."""
        moved = self.track.move_pct(start_ts, ts)
        return None if moved is None else (price / start_price - 1) * 100 - beta * moved


def benchmark_for(benchmarks: Mapping[str, str], symbol: str, groups: Sequence[str], calendar: str) -> str | None:
    """The symbol's benchmark: that of its first group (`group:NAME`) that has one, else its calendar's; never
    itself (a benchmark has no market to move against)."""
    for target in (*groups, calendar):
        found = benchmarks.get(target)
        if found is not None:
            return None if found == symbol else found
    return None
