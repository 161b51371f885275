"""Market moves: a storm in which most symbols only followed their benchmark is one market move, not N alerts.

Pure: a storm's members (anomalies carrying their market fields, pipeline.detect.market) in, what the grouped
message says out: the benchmark's move, how many followed, and the symbols that moved on their own, which a
desk wants first.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.schema import Anomaly

# A member followed its market when its own move is at most this share of its move.
FOLLOWED_SHARE = 0.5


@dataclass(frozen=True)
class MarketMove:
    benchmark: str
    market_change_pct: float  # the benchmark's move (median over the followers' spans)
    span_seconds: float  # over how long (median of the followers')
    followed: list[Anomaly]  # largest move first
    own: list[Anomaly]  # moved on their own: largest own move first
    total: int  # members of the storm


def followed(anomaly: Anomaly) -> bool:
    """Its market explains most of its move: the own move is at most FOLLOWED_SHARE of it."""
    own = anomaly.own_change_pct
    return own is not None and abs(own) <= FOLLOWED_SHARE * abs(anomaly.change_pct)


def market_move(members: Sequence[Anomaly]) -> MarketMove | None:
    """The storm as a market move, when more than half its members followed one benchmark; else None."""
    known = [a for a in members if a.benchmark and a.market_change_pct is not None and a.own_change_pct is not None]
    if not known:
        return None
    benchmark = Counter(a.benchmark for a in known).most_common(1)[0][0]
    same = [a for a in known if a.benchmark == benchmark]
    followers = [a for a in same if followed(a)]
    if 2 * len(followers) <= len(members):
        return None
    assert benchmark is not None
    return MarketMove(
        benchmark,
        statistics.median(a.market_change_pct or 0.0 for a in followers),
        statistics.median((a.timestamp - a.reference_timestamp).total_seconds() for a in followers),
        sorted(followers, key=lambda a: (-abs(a.peak_change_pct), a.symbol)),
        sorted((a for a in same if not followed(a)), key=lambda a: (-abs(a.own_change_pct or 0.0), a.symbol)),
        len(members),
    )
