"""Each symbol's usual gap between live ticks: a robust running estimate, learned only from live ticks.

A tick is live when it reached Kafka within LIVE_WINDOW of its own event time and of now, and a gap between two
live ticks counts only when the market is open and the ticks arrived at (roughly) the pace they were made: a
replay of history, or a synthetic market at full speed, teaches nothing, so it can never be called stale.
Pure: the batch task hands in the ticks, the time and whether the market is open.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

LIVE_WINDOW_MS = 60_000
MIN_SAMPLES = 3  # gaps learned before a symbol is watched ("never seen live" until then)
WEIGHT = 0.1  # of each new gap in the estimate (in log space: a geometric mean that forgets slowly)
CLAMP = 4.0  # a gap counts as at most 4x (at least 1/4x) the estimate: one long pause does not reset it


@dataclass(frozen=True)
class Feed:
    """What is known of a symbol's live feed."""

    last_ms: int  # event time of its last live tick
    published_ms: int  # when that tick reached Kafka
    price: float
    gap_ms: float | None = None  # the usual gap while its market is open
    samples: int = 0

    @property
    def watched(self) -> bool:
        return self.gap_ms is not None and self.samples >= MIN_SAMPLES

    def encode(self) -> bytes:
        return orjson.dumps([self.last_ms, self.published_ms, self.price, self.gap_ms, self.samples])

    @classmethod
    def decode(cls, raw: bytes | str) -> Feed:
        last, published, price, gap, samples = orjson.loads(raw)
        return cls(last, published, price, gap, samples)


def is_live(ts_ms: int, published_ms: int | None, now_ms: int) -> bool:
    return (
        published_ms is not None
        and abs(now_ms - published_ms) <= LIVE_WINDOW_MS
        and abs(published_ms - ts_ms) <= LIVE_WINDOW_MS
    )


def learn(
    feed: Feed | None, ticks: Iterable[tuple[int, float, int | None]], now_ms: int, *, market_open: bool
) -> Feed | None:
    """The feed after `ticks` ((event ms, price, published ms) each); unchanged when none of them is live."""
    for ts, price, published in sorted(ticks):
        if published is None or not is_live(ts, published, now_ms):
            continue
        if feed is None:
            feed = Feed(ts, published, price)
            continue
        if ts <= feed.last_ms:
            continue
        gap, paced = ts - feed.last_ms, published - feed.published_ms
        gap_ms, samples = feed.gap_ms, feed.samples
        if market_open and gap <= LIVE_WINDOW_MS and paced >= gap / 2:
            gap_ms = float(gap) if gap_ms is None else _blend(gap_ms, gap)
            samples += 1
        feed = Feed(ts, published, price, gap_ms, samples)
    return feed


def _blend(estimate: float, gap: float) -> float:
    bounded = min(max(gap, estimate / CLAMP, 1.0), estimate * CLAMP)
    return math.exp((1 - WEIGHT) * math.log(estimate) + WEIGHT * math.log(bounded))
