"""Which feeds went stale and which came back, at one moment (pure: the watch reads and writes Redis).

A watched symbol whose market is open is stale once it has been silent for longer than its allowance,
`max(stale_factor x usual gap, stale_min_seconds)`; silence is counted from its last tick, or from the
session's open when that came later (a symbol that does not tick after the open is stale too). Nothing is
stale while its market is closed. A stale symbol is back at its next live tick. When `down_threshold` or more
symbols of one calendar are stale at once, they make one "feed down" message instead of one each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

import orjson

from pipeline.calendars import Session
from pipeline.feeds.cadence import Feed


@dataclass(frozen=True)
class Episode:
    """A stale feed, from when it was noticed until its next tick."""

    symbol: str
    calendar: str
    last_ms: int  # its last tick before the silence
    last_price: float
    gap_ms: float
    noticed_ms: int
    muted: bool = False
    grouped: bool = False  # part of a "feed down" message rather than a message of its own

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Episode:
        return cls(**orjson.loads(raw))


@dataclass(frozen=True)
class Recovery:
    episode: Episode
    feed: Feed  # with the tick that ended the silence


@dataclass(frozen=True)
class Verdict:
    stale: list[Episode] = field(default_factory=list)
    recovered: list[Recovery] = field(default_factory=list)
    outages: dict[str, list[str]] = field(default_factory=dict)  # calendar -> its silent symbols, when grouped
    watched: Counter[str] = field(default_factory=Counter)  # calendar -> symbols watched


@dataclass(frozen=True)
class Policy:
    stale_factor: float
    stale_min_seconds: float
    down_threshold: int

    def allowance_ms(self, gap_ms: float) -> float:
        return max(self.stale_factor * gap_ms, self.stale_min_seconds * 1000)


def judge(
    now: datetime,
    feeds: Mapping[str, Feed],
    episodes: Mapping[str, Episode],
    session_of: Callable[[str], Session],
    muted: Callable[[str], bool],
    policy: Policy,
) -> Verdict:
    """What changed since the last check: new stale feeds, recovered ones, calendars whose feed is down."""
    now_ms = int(now.timestamp() * 1000)
    verdict = Verdict()
    silent: dict[str, list[str]] = {}
    for symbol, episode in episodes.items():
        feed = feeds.get(symbol)
        if feed is not None and feed.last_ms > episode.last_ms:
            verdict.recovered.append(Recovery(episode, feed))
        elif not episode.muted:
            silent.setdefault(episode.calendar, []).append(symbol)
    candidates: list[Episode] = []
    for symbol, feed in feeds.items():
        if not feed.watched or feed.gap_ms is None:
            continue
        session = session_of(symbol)
        verdict.watched[session.code] += 1
        if symbol in episodes or not session.open:
            continue
        opened_ms = int(session.since.timestamp() * 1000) if session.since else 0
        if now_ms - max(feed.last_ms, opened_ms) > policy.allowance_ms(feed.gap_ms):
            candidates.append(
                Episode(symbol, session.code, feed.last_ms, feed.price, feed.gap_ms, now_ms, muted=muted(symbol))
            )
    for episode in candidates:
        if not episode.muted:
            silent.setdefault(episode.calendar, []).append(episode.symbol)
    down = {code for code, symbols in silent.items() if len(symbols) >= policy.down_threshold}
    verdict.stale.extend(Episode(**{**asdict(e), "grouped": e.calendar in down and not e.muted}) for e in candidates)
    verdict.outages.update({code: sorted(silent[code]) for code in down})
    return verdict
