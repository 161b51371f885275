"""A symbol's window as detection keeps it between batches: the ticks (sorted by event time), the episodes as of the
watermark and since, and how a batch merges ticks in, settles, folds the usual for good and prunes.

Pure, like the rest of `pipeline.detect`; `pipeline.detect.detection` drives it, `pipeline.detect.state` stores it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pipeline.detect.market import Beta, Market
from pipeline.detect.rules import Baseline, Pending, skew_reason


class TickPoint(NamedTuple):
    """The compact form of a tick the workers handle: event time, price, volume, Kafka record time."""

    ts: int
    price: float
    volume: float | None = None
    published: int | None = None
    trusted: bool = False  # a print a vendor already filtered (bars of a market data file): see SymbolState


@dataclass
class Episode:
    """The open anomaly of one rule (None when armed), the last event time its condition held, and the
    condition holding but not confirmed yet (`pending`)."""

    anomaly: dict[str, Any] | None = None
    last_hold: int = 0
    pending: Pending | None = None

    def copy(self) -> Episode:
        return Episode(dict(self.anomaly) if self.anomaly else None, self.last_hold, self.pending)


@dataclass
class SymbolState:
    """Everything detection remembers about one symbol between batches (pipeline.state stores it).

    `ts`, `prices` and `volumes` are the window, sorted by event time. `settled` is each rule's episode as
    of the `watermark`; `live` as of `evaluated_upto`, the newest tick evaluated; `changes` records every
    episode change in between, so the settled state can move forward without re-evaluating. `known` holds,
    for anomalies still open or newer than the watermark, what must not change when they are re-evaluated.
    """

    ts: list[int] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    volumes: list[float] = field(default_factory=list)  # NaN where a tick had no volume
    watermark: int | None = None
    settled: dict[str, Episode] = field(default_factory=dict)
    evaluated_upto: int | None = None
    live: dict[str, Episode] = field(default_factory=dict)
    changes: list[tuple[int, str, Episode]] = field(default_factory=list)
    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    suspect: dict[int, int] = field(default_factory=dict)  # bad print's event time -> that of the tick judging it
    baseline: Baseline = field(default_factory=Baseline)  # the ticks pruned from the window, for zscore and volume
    # The symbol's newest ticks are trusted prints (derived from bars, whose open, high, low and close are trades
    # the vendor already filtered): never judged as bad prints, never held for tick-count confirmation.
    trusted: bool = False
    beta: Beta = field(default_factory=Beta)  # its sensitivity to its benchmark (pipeline.detect.market)
    # Per window length of zscore and volume: the usual folded over ticks no later batch can change, so a window
    # shorter than the longest kept does not fold the same ticks again in every batch
    folded: dict[int, Baseline] = field(default_factory=dict)


def ongoing(episode: Episode | None) -> bool:
    return episode is not None and (episode.anomaly is not None or episode.pending is not None)


def settle(
    state: SymbolState, episodes: dict[str, Episode], changes: list[tuple[int, str, Episode]], lateness_ms: int
) -> None:
    """Move the watermark to the newest tick minus the lateness, fold the changes up to it into the settled
    episodes, and keep the rest (a later out-of-order tick re-evaluates from there)."""
    newest_allowed_late = state.ts[-1] - lateness_ms
    state.watermark = newest_allowed_late if state.watermark is None else max(state.watermark, newest_allowed_late)
    settled = {name: ep.copy() for name, ep in state.settled.items()}
    settled.update({name: ep for ts, name, ep in changes if ts <= state.watermark})
    state.settled = {name: ep for name, ep in settled.items() if ongoing(ep)}  # an armed rule needs no entry
    state.changes = [change for change in changes if change[0] > state.watermark]
    state.live = {name: ep for name, ep in episodes.items() if ongoing(ep)}
    state.evaluated_upto = state.ts[-1]


def insert(
    state: SymbolState, ticks: Iterable[TickPoint], clock: tuple[int, int] | None
) -> tuple[list[TickPoint], dict[int, int], list[TickPoint], int | None, list[tuple[int, str]]]:
    """Merge ticks into the sorted window.

    Returns the late ticks, Kafka times by event time, the duplicates, the earliest event time inserted
    (None if nothing was), and the ticks quarantined for a timestamp too far ahead of `clock` (now in ms,
    tolerance in ms) and of the symbol's newest tick.
    """
    late: list[TickPoint] = []
    published: dict[int, int] = {}
    duplicates: list[TickPoint] = []
    skewed: list[tuple[int, str]] = []
    earliest: int | None = None
    for tick in ticks:
        if state.watermark is not None and tick.ts <= state.watermark:
            late.append(tick)
            continue
        if clock is not None and (reason := skew_reason(tick.ts, state.ts[-1] if state.ts else None, *clock)):
            skewed.append((tick.ts, reason))
            continue
        i = bisect.bisect_left(state.ts, tick.ts)
        if i < len(state.ts) and state.ts[i] == tick.ts:
            duplicates.append(tick)  # same symbol and event time: the same tick again (a replay)
            continue
        state.ts.insert(i, tick.ts)
        state.prices.insert(i, tick.price)
        state.volumes.insert(i, math.nan if tick.volume is None else tick.volume)
        if tick.published is not None:
            published[tick.ts] = tick.published
        earliest = tick.ts if earliest is None else min(earliest, tick.ts)
    return late, published, duplicates, earliest, skewed


def tentative_ids(state: SymbolState, watermark: int) -> dict[str, list[str]]:
    """Per rule, the ids of anomalies opened after the watermark, oldest first.

    Re-evaluation re-opens those episodes; it reuses their ids even when the tick that now opens one (or
    its reference) differs, so a late tick updates an alert already sent instead of sending another.
    """
    tentative: dict[str, list[tuple[int, str]]] = {}
    for key, seen in state.known.items():
        if (seen["timestamp"] or 0) > watermark:
            tentative.setdefault(str(seen.get("key") or seen.get("rule")), []).append((seen["timestamp"] or 0, key))
    return {rule: [key for _, key in sorted(items)] for rule, items in tentative.items()}


def fold_for_good(state: SymbolState, windows: set[int], lateness_ms: int, tau_ms: float) -> None:
    """Fold each baseline window's usual forward over the ticks no later batch can change: older than the window
    and the lateness before the watermark, before the last tick at or before it (a late tick re-evaluates from
    there and may judge it a bad print) and before any bad print a tick after the watermark judged (judged again
    then)."""
    assert state.watermark is not None
    ts, watermark = state.ts, state.watermark
    stop = bisect.bisect_right(ts, watermark) - 1
    unsettled = [t for t, judged in state.suspect.items() if judged > watermark]
    if unsettled:
        stop = min(stop, bisect.bisect_left(ts, min(unsettled)))
    folded: dict[int, Baseline] = {}
    for window_ms in windows:
        end = min(stop, bisect.bisect_left(ts, watermark - window_ms - lateness_ms))
        found = state.folded.get(window_ms)
        if found is None or found.last_ts is None:
            start, found = 0, state.baseline.copy()
        else:
            start = bisect.bisect_right(ts, found.last_ts)
        for j in range(start, end):
            if ts[j] not in state.suspect:
                found.fold(ts[j], state.prices[j], state.volumes[j], tau_ms)
        folded[window_ms] = found
    state.folded = folded


def prune(
    state: SymbolState,
    window_ms: int,
    tau_ms: float | None,
    *,
    keep_previous: bool = False,
    market: tuple[Market, float] | None = None,
) -> None:
    """Drop ticks no future evaluation can see (folding them into the baseline when `tau_ms` is given, and into
    β when `market` (with β's time constant) is, bad prints left out), and ids no re-evaluation can produce
    again. `keep_previous` keeps the tick before the first one a late tick can make re-evaluate (a gap is
    measured from it)."""
    assert state.watermark is not None
    keep_from = bisect.bisect_left(state.ts, state.watermark - window_ms)
    if keep_previous:
        keep_from = min(keep_from, max(0, bisect.bisect_right(state.ts, state.watermark) - 1))
    if keep_from:
        if tau_ms is not None:
            for j in range(keep_from):
                if state.ts[j] not in state.suspect:
                    state.baseline.fold(state.ts[j], state.prices[j], state.volumes[j], tau_ms)
        if market is not None:
            track, beta_tau = market[0].track, market[1]
            for j in range(keep_from):
                if state.ts[j] not in state.suspect:
                    state.beta.fold(state.ts[j], state.prices[j], track.price_at(state.ts[j]), beta_tau)
        state.suspect = {ts: judged for ts, judged in state.suspect.items() if ts > state.ts[keep_from - 1]}
        del state.ts[:keep_from]
        del state.prices[:keep_from]
        del state.volumes[:keep_from]
        # A window's usual that missed ticks now pruned (folded into `baseline` instead) starts again from it
        last = state.baseline.last_ts
        state.folded = {w: b for w, b in state.folded.items() if last is None or (b.last_ts or 0) >= last}
    open_ids = {ep.anomaly["id"] for eps in (state.settled, state.live) for ep in eps.values() if ep.anomaly}
    state.known = {
        key: seen for key, seen in state.known.items() if (seen["timestamp"] or 0) > state.watermark or key in open_ids
    }
