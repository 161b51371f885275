"""Pure anomaly detection: a symbol's window state and a batch of ticks in, new state and anomalies out.

No I/O here, so every rule and invariant is testable alone. Times are epoch milliseconds.

How event time and lateness work. The state keeps the recent ticks sorted by event time and the episode
state of each rule as of the *watermark* (newest event time seen minus the allowed lateness). Each batch
re-evaluates, in event-time order, only the ticks newer than the watermark, starting from that settled
state. Ticks arriving out of order within the lateness therefore give exactly the result they would have
given in order; ticks older than the watermark are reported as `late` (stored, not evaluated).

Episodes (one alert per episode, like Alertmanager): an anomaly opens when a rule's condition starts to
hold; while it holds (and until it has been clear for `cooldown`) the same anomaly is updated, never
re-opened. Its id comes from (symbol, rule, the reference tick it is measured from), so a replay, or the
same crash seen in another order, yields the same id. When the condition has been clear for the cooldown
the episode ends: the anomaly is reported once more with `resolved_at` (the event time that ended it).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pipeline.detect.market import Beta, Market
from pipeline.detect.rules import (
    BASELINE_RULES,
    GAP,
    OFF_HOURS_REVERT_SHARE,
    REVERT_SHARE,
    Baseline,
    Crossing,
    Pending,
    Sessions,
    WindowChecks,
    bad_print_reason,
    confirmed,
    contradicts,
    skew_reason,
)
from pipeline.detect.silence import Hush, Silence
from pipeline.schema import Anomaly, RuleName, from_ms, to_ms

__all__ = ["Episode", "Outcome", "Rule", "SymbolState", "TickPoint", "advance"]


class TickPoint(NamedTuple):
    """The compact form of a tick the workers handle: event time, price, volume, Kafka record time."""

    ts: int
    price: float
    volume: float | None = None
    published: int | None = None
    trusted: bool = False  # a print a vendor already filtered (bars of a market data file): see SymbolState


@dataclass(frozen=True)
class Rule:
    """One rule's parameters for one symbol; threshold 0 disables it.

    `threshold_pct` is a percentage for drop and rise, k (sigmas) for zscore and a ratio for volume. An episode
    opens once the condition has held on `confirm_ticks` ticks in a row and for `confirm_seconds`. A rule with a
    `watcher` is that person's watch (pipeline.watches): its episodes are its own, never muted by the channel's.
    """

    name: RuleName
    threshold_pct: float
    window_seconds: int
    cooldown_seconds: int
    confirm_ticks: int = 1
    confirm_seconds: float = 0.0
    watcher: str | None = None
    # What its episodes are kept under: the rule's name, and for a watch its watcher's id too
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", episode_key(self.name, self.watcher))

    @property
    def enabled(self) -> bool:
        return self.threshold_pct > 0

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    @property
    def cooldown_ms(self) -> int:
        """Never shorter than the window: a new episode must not measure from the previous one's reference."""
        return max(self.cooldown_seconds, self.window_seconds) * 1000


def episode_key(rule: str, watcher: str | None) -> str:
    return rule if watcher is None else f"{rule}@{watcher}"


def anomaly_id(symbol: str, rule: str, reference_ts: int) -> str:
    digest = hashlib.blake2b(f"{symbol}|{rule}|{reference_ts}".encode(), digest_size=10).hexdigest()
    return f"{symbol.lower().replace('/', '-')}-{rule}-{digest}"


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


@dataclass
class Outcome:
    """What a batch changed: anomalies to store (new or updated), the ids that are new, deepened (a new peak of
    an episode still open, not new) and resolved (their episode ended; each reported once), the late and
    duplicate ticks, and the ticks newly found suspect (event time, reason): quarantined for their timestamp
    (never evaluated) or bad prints (taken out of the windows; possibly a tick of an earlier batch)."""

    anomalies: list[Anomaly]
    new_ids: list[str]
    late: list[TickPoint]
    duplicates: list[TickPoint]
    deepened_ids: list[str] = field(default_factory=list)
    resolved_ids: list[str] = field(default_factory=list)
    suspects: list[tuple[int, str]] = field(default_factory=list)
    lifted: list[Hush] = field(default_factory=list)  # mutes whose condition the batch met (pipeline.detect.silence)


def advance(
    state: SymbolState,
    symbol: str,
    ticks: Iterable[TickPoint],
    rules: Sequence[Rule],
    *,
    lateness_ms: int,
    now: datetime,
    silence: Sequence[Hush] = (),
    sessions: Sessions | None = None,
    market: Market | None = None,
    clock_skew_ms: int | None = None,
    baseline_seconds: int = 3600,
    beta_seconds: int = 432_000,
) -> Outcome:
    """Fold a batch of one symbol's ticks into `state` (mutated in place) and report what it found.

    Ticks newer than everything evaluated so far (the usual case) are evaluated from the live episode
    state; a tick landing among evaluated ones makes the batch re-evaluate everything after the watermark
    from the settled state, exactly as if the ticks had come in order.

    A tick dated more than `clock_skew_ms` ahead of `now` and of the symbol's newest tick is quarantined
    (see rules.skew_reason): it never enters the window, so it cannot move the watermark. A tick that opens
    a pending condition and is contradicted by the next tick is a bad print: it leaves the windows.
    `silence` (the mutes in force) applies to the episodes this batch opens (an episode keeps the mute it opened
    with, so its resolution is notified exactly when its detection was), unless a move breaks through it. A
    rule turned off ends its open episode on the next tick. `baseline_seconds` is the time constant of the
    zscore and volume rules' baseline. `sessions` are the symbol's exchange's (none: 24/7): no window reaches
    back before the latest open, the gap rule judges a session's first tick, and outside regular hours a
    smaller take-back shows a print up as bad. `market` (the symbol's benchmark and its recent prices) puts each
    new anomaly beside the market's move and feeds the `relative` rule; β folds the ticks leaving the window, with
    time constant `beta_seconds`.
    """
    ticks = list(ticks)
    if ticks:
        state.trusted = ticks[-1].trusted
    late, published, duplicates, earliest, skewed = _insert(
        state, ticks, None if clock_skew_ms is None else (to_ms(now), clock_skew_ms)
    )
    if earliest is None:
        return Outcome([], [], late, duplicates, suspects=skewed)

    active = [rule for rule in rules if rule.enabled]
    run = _Evaluation.resume(
        state,
        symbol,
        rules,
        earliest,
        published=published,
        now=now,
        silence=Silence(silence),
        sessions=sessions,
        market=market,
        lateness_ms=lateness_ms,
        baseline_seconds=baseline_seconds,
    )
    run.suspects += skewed
    run.evaluate()
    _settle(state, {**run.episodes, **run.watching}, run.changes, lateness_ms)
    outcome = run.outcome(late, duplicates)
    # The zscore and volume rules measure against ticks older than the window and the lateness: keep those
    # in the window until they are folded into the baseline.
    baseline = any(rule.name in BASELINE_RULES for rule in active)
    windows = {rule.window_ms for rule in active if rule.name in BASELINE_RULES}
    _fold_for_good(state, windows, lateness_ms, baseline_seconds * 1000)
    _prune(
        state,
        max((rule.window_ms for rule in active if rule.name != GAP), default=0) + (lateness_ms if baseline else 0),
        baseline_seconds * 1000 if baseline else None,
        keep_previous=any(rule.name == GAP for rule in active),
        market=None if market is None else (market, beta_seconds * 1000),
    )
    return outcome


class _Evaluation:
    """One pass over a symbol's window, from `start` to its newest tick: each tick's rule checks, bad prints,
    and the episode transitions they make, with what the batch changed."""

    def __init__(
        self,
        state: SymbolState,
        symbol: str,
        rules: list[Rule],
        start: int,
        source: dict[str, Episode],
        changes: list[tuple[int, str, Episode]],
        reusable: dict[str, list[str]],
        *,
        published: dict[int, int],
        now: datetime,
        silence: Silence,
        sessions: Sessions | None,
        market: Market | None,
        lateness_ms: int,
        baseline_seconds: int,
    ) -> None:
        self.state, self.symbol, self.start = state, symbol, start
        self.rules = [rule for rule in rules if rule.watcher is None]
        self.watches = _WatchGroups([rule for rule in rules if rule.watcher is not None])
        self.market, self.beta = market, state.beta.value
        # Each channel rule's episode, and the watches' under way (an armed watch has none: thousands cost nothing)
        self.episodes: dict[str, Episode] = {rule.key: source.get(rule.key, Episode()).copy() for rule in self.rules}
        self.watching: dict[str, Episode] = {
            key: source[key].copy() for key in self.watches.by_key if key in source and _ongoing(source[key])
        }
        self.changes, self.reusable = changes, reusable
        self.published, self.now, self.silence = published, now, silence
        self.touched: dict[str, dict[str, Any]] = {}  # anomalies changed by this batch, by id
        self.deepened: set[str] = set()
        self.suspects: list[tuple[int, str]] = []
        # Bad prints judged by a tick after `start` are judged again, by the ticks known now; only those not
        # flagged before are reported.
        self.flagged_before = set(state.suspect)
        state.suspect = {ts: judged for ts, judged in state.suspect.items() if judged <= start}
        excluded = {bisect.bisect_left(state.ts, ts) for ts in state.suspect}
        self.checks = WindowChecks(
            state.ts,
            state.prices,
            state.volumes,
            excluded=excluded,
            baseline=state.baseline,
            tau_ms=baseline_seconds * 1000,
            lateness_ms=lateness_ms,
            sessions=sessions,
            market=market,
            beta=self.beta,
            folded=state.folded,
        )

    @classmethod
    def resume(
        cls, state: SymbolState, symbol: str, rules: Sequence[Rule], earliest: int, **options: Any
    ) -> _Evaluation:
        """Go on from the live state when every new tick is newer than those evaluated, else from the settled
        state at the watermark (re-using the ids of the anomalies opened since, see `_tentative_ids`).

        Enabled rules are evaluated; a disabled rule only while it still has an episode to end."""
        watermark = state.watermark if state.watermark is not None else state.ts[0] - 1
        if state.evaluated_upto is not None and earliest > state.evaluated_upto:
            start, source, changes, reusable = state.evaluated_upto, state.live, state.changes, {}
        else:
            start, source, changes, reusable = watermark, state.settled, [], _tentative_ids(state, watermark)
        evaluated = [rule for rule in rules if rule.enabled or _ongoing(source.get(rule.key))]
        return cls(state, symbol, evaluated, start, source, changes, reusable, **options)

    def evaluate(self) -> None:
        """Every tick after `start`, in event-time order: first whether it shows the tick before it up as a bad
        print, then each rule's step."""
        state = self.state
        first = bisect.bisect_right(state.ts, self.start)
        excluded = self.checks.excluded
        prev = next((j for j in range(first - 1, -1, -1) if j not in excluded), None)  # the last trusted tick
        silence = self.silence
        for i in range(first, len(state.ts)):
            if silence.hushes:
                silence.tick(state.prices[i])
            hits, watched = self._hits(i)
            if (
                prev is not None
                and not state.trusted
                and self._bad_print(prev, i, {**hits, **watched} if watched else hits)
            ):
                hits, watched = self._hits(i)  # measured again without it
            prev = i
            for rule in self.rules:
                self._step(rule, self.episodes[rule.key], hits[rule.key], i)
            if watched:
                self._step_watches(watched, i)

    def _hits(self, i: int) -> tuple[dict[str, Crossing | None], dict[str, Crossing | None]]:
        """Each rule's condition at tick `i` (a disabled rule's never holds), and the watches' that hold or have an
        episode under way."""
        hits = {rule.key: self.checks.check(rule, i) if rule.enabled else None for rule in self.rules}
        return hits, self.watches.hits(self.checks, i, self.watching) if self.watches.groups else {}

    def _step_watches(self, watched: dict[str, Crossing | None], i: int) -> None:
        """The watches that hold or have an episode: a step each; an episode over leaves the armed watch bare."""
        by_key, watching = self.watches.by_key, self.watching
        for key, hit in watched.items():
            episode = watching.setdefault(key, Episode())
            self._step(by_key[key], episode, hit, i)
            if not _ongoing(episode):
                del watching[key]

    def _bad_print(self, prev: int, i: int, hits: dict[str, Crossing | None]) -> bool:
        """Whether tick `prev` opened a condition that tick `i` takes back; if so it leaves every window and
        the conditions it opened are dropped."""
        state, ts = self.state, self.state.ts[i]
        checks, prev_ts = self.checks, state.ts[prev]

        def share() -> float:  # asked only of a print that opened a condition alone: rare, and not free
            return OFF_HOURS_REVERT_SHARE if checks.off_hours(prev_ts) else REVERT_SHARE

        episodes = itertools.chain(self.episodes.items(), self.watching.items())
        reason = _contradicted(episodes, hits, prev_ts, state.prices[prev], state.prices[i], share)
        if reason is None:
            return False
        self.checks.exclude(prev)
        state.suspect[state.ts[prev]] = ts
        if state.ts[prev] not in self.flagged_before:
            self.suspects.append((state.ts[prev], reason))
        for name, episode in (*self.episodes.items(), *self.watching.items()):
            if episode.pending is not None and episode.pending.since == state.ts[prev]:
                episode.pending = None
                self.changes.append((ts, name, episode.copy()))
        return True

    def _step(self, rule: Rule, episode: Episode, hit: Crossing | None, i: int) -> None:
        """One rule at one tick: pending -> open (confirmed) -> deeper -> resolved (clear for the cooldown)."""
        state, ts, price = self.state, self.state.ts[i], self.state.prices[i]
        if hit is not None:
            if episode.anomaly is None:
                pending = (
                    Pending(ts, 1, state.prices[hit.ref], price)
                    if episode.pending is None
                    else episode.pending._replace(ticks=episode.pending.ticks + 1)
                )
                # A gap holds on one tick only; trusted prints need no confirmation
                ticks_needed = 1 if state.trusted or rule.name == GAP else rule.confirm_ticks
                if not confirmed(pending, ts, ticks_needed, rule.confirm_seconds):
                    episode.pending = pending  # holds, not confirmed yet (Alertmanager's "pending")
                    self.changes.append((ts, rule.key, episode.copy()))
                    return
                episode.pending = None
                volume = None if math.isnan(state.volumes[i]) else state.volumes[i]
                tick = TickPoint(ts, price, volume, self.published.get(ts))
                episode.anomaly = _open(
                    self.symbol,
                    rule,
                    tick,
                    hit,
                    state.ts[hit.ref],
                    state.prices[hit.ref],
                    pending.since,
                    self.now,
                    self.silence,
                    state.known,
                    self.reusable.get(rule.key),
                )
                if self.market is not None:
                    anomaly = episode.anomaly
                    anomaly.update(
                        self.market.context(
                            ref_ts=anomaly["reference_timestamp"],
                            ts=ts,
                            change_pct=anomaly["change_pct"],
                            beta=self.beta,
                        )
                    )
            elif _deepen(episode.anomaly, price, ts):
                self.deepened.add(episode.anomaly["id"])
                if episode.anomaly["muted"] and self.silence.hushes and rule.watcher is None:
                    _break_through(episode.anomaly, self.silence.breaks(_multiple(rule, episode.anomaly, hit)))
            episode.last_hold = ts
            self.touched[episode.anomaly["id"]] = episode.anomaly
        elif episode.pending is not None:
            episode.pending = None  # it stopped holding before it was confirmed
        elif episode.anomaly is not None and (ts - episode.last_hold >= rule.cooldown_ms or not rule.enabled):
            # Clear for a whole cooldown (or the rule was turned off): the episode ends, reported once, and
            # the rule re-arms.
            episode.anomaly["resolved_at"] = ts
            self.touched[episode.anomaly["id"]] = episode.anomaly
            self.silence.resolved(episode.anomaly["id"])
            episode.anomaly = None
        else:
            return
        self.changes.append((ts, rule.key, episode.copy()))

    def outcome(self, late: list[TickPoint], duplicates: list[TickPoint]) -> Outcome:
        """What the batch changed, remembering in `state.known` what was reported (so a re-evaluation of the
        same ticks reports no anomaly as new, and no resolution, twice)."""
        known, touched = self.state.known, self.touched
        # New to whoever is told: never reported, or reported muted and now broken through
        new_ids = [
            key for key, data in touched.items() if key not in known or (known[key].get("muted") and not data["muted"])
        ]
        resolved_ids = [
            key
            for key, data in touched.items()
            if data.get("resolved_at") is not None and not known.get(key, {}).get("resolved")
        ]
        deepened_ids = [
            key
            for key, data in touched.items()
            if key in self.deepened and key not in new_ids and data.get("resolved_at") is None
        ]
        for key, data in touched.items():
            known[key] = {
                "rule": data["rule"],
                "key": episode_key(data["rule"], data.get("watcher")),
                "timestamp": data["timestamp"],
                "published_at": data["published_at"],
                "detected_at": data["detected_at"],
                "muted": data["muted"],
                "resolved": known.get(key, {}).get("resolved", False) or key in resolved_ids,
            }
        return Outcome(
            [_model(data) for data in touched.values()],
            new_ids,
            late,
            duplicates,
            deepened_ids=deepened_ids,
            resolved_ids=resolved_ids,
            suspects=self.suspects,
            lifted=self.silence.lifted,
        )


class _WatchGroups:
    """Personal watches grouped by rule and window, thresholds sorted: at each tick one measure per group tells
    every watch of it that holds (a bisection), so the cost grows with the groups, not the watches."""

    def __init__(self, watches: list[Rule]) -> None:
        self.by_key = {rule.key: rule for rule in watches if rule.enabled}
        grouped: dict[tuple[RuleName, int], list[Rule]] = {}
        for rule in self.by_key.values():
            grouped.setdefault((rule.name, rule.window_ms), []).append(rule)
        self.groups = [
            (name, window_ms, [r.threshold_pct for r in ordered], ordered)
            for (name, window_ms), rules in grouped.items()
            for ordered in [sorted(rules, key=lambda r: r.threshold_pct)]
        ]

    def hits(self, checks: WindowChecks, i: int, episodes: Mapping[str, Episode]) -> dict[str, Crossing | None]:
        found: dict[str, Crossing | None] = {}
        for name, window_ms, thresholds, rules in self.groups:
            measured = checks.measure(name, window_ms, i)
            if measured is None:
                continue
            holding = bisect.bisect_right(thresholds, measured.size)
            if holding:
                crossing = checks.crossing(window_ms, i, measured)
                found.update((rule.key, crossing) for rule in rules[:holding])
        for key in episodes:
            if key not in found:
                found[key] = None  # an episode under way that does not hold at this tick
        return found


def _ongoing(episode: Episode | None) -> bool:
    return episode is not None and (episode.anomaly is not None or episode.pending is not None)


def _settle(
    state: SymbolState, episodes: dict[str, Episode], changes: list[tuple[int, str, Episode]], lateness_ms: int
) -> None:
    """Move the watermark to the newest tick minus the lateness, fold the changes up to it into the settled
    episodes, and keep the rest (a later out-of-order tick re-evaluates from there)."""
    newest_allowed_late = state.ts[-1] - lateness_ms
    state.watermark = newest_allowed_late if state.watermark is None else max(state.watermark, newest_allowed_late)
    settled = {name: ep.copy() for name, ep in state.settled.items()}
    settled.update({name: ep for ts, name, ep in changes if ts <= state.watermark})
    state.settled = {name: ep for name, ep in settled.items() if _ongoing(ep)}  # an armed rule needs no entry
    state.changes = [change for change in changes if change[0] > state.watermark]
    state.live = {name: ep for name, ep in episodes.items() if _ongoing(ep)}
    state.evaluated_upto = state.ts[-1]


def _contradicted(
    episodes: Iterable[tuple[str, Episode]],
    hits: Mapping[str, Crossing | None],
    prev_ts: int,
    prev_price: float,
    price: float,
    share: Callable[[], float],
) -> str | None:
    """Why the previous tick is a bad print: it alone made a condition hold, and this tick takes the move back."""
    for name, episode in episodes:
        pending = episode.pending
        if (
            pending is not None
            and pending.ticks == 1
            and pending.since == prev_ts
            and hits.get(name) is None
            and contradicts(pending.reference_price, prev_price, price, share())
        ):
            return bad_print_reason(name, pending.reference_price, prev_price, price)
    return None


def _insert(
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


def _tentative_ids(state: SymbolState, watermark: int) -> dict[str, list[str]]:
    """Per rule, the ids of anomalies opened after the watermark, oldest first.

    Re-evaluation re-opens those episodes; it reuses their ids even when the tick that now opens one (or
    its reference) differs, so a late tick updates an alert already sent instead of sending another.
    """
    tentative: dict[str, list[tuple[int, str]]] = {}
    for key, seen in state.known.items():
        if (seen["timestamp"] or 0) > watermark:
            tentative.setdefault(str(seen.get("key") or seen.get("rule")), []).append((seen["timestamp"] or 0, key))
    return {rule: [key for _, key in sorted(items)] for rule, items in tentative.items()}


def _open(
    symbol: str,
    rule: Rule,
    tick: TickPoint,
    hit: Crossing,
    ref_ts: int,
    ref_price: float,
    started: int,
    now: datetime,
    silence: Silence,
    known: dict[str, dict[str, Any]],
    reusable: list[str] | None,
) -> dict[str, Any]:
    change = round((tick.price / ref_price - 1) * 100, 4)
    key = reusable.pop(0) if reusable else anomaly_id(symbol, rule.key, ref_ts)
    seen = known.get(key, {})
    same_tick = seen.get("timestamp") == tick.ts
    # The channel's mutes never silence a personal watch
    hushed = silence.hushes and rule.watcher is None
    broke = silence.breaks(_multiple(rule, {"change_pct": change}, hit)) if hushed else None
    anomaly = {
        "id": key,
        "symbol": symbol,
        "rule": rule.name,
        "timestamp": tick.ts,
        "price": tick.price,
        "volume": tick.volume,
        "reference_price": ref_price,
        "reference_timestamp": ref_ts,
        "change_pct": change,
        "threshold_pct": rule.threshold_pct,
        "window_seconds": rule.window_seconds,
        "peak_price": tick.price,
        "peak_change_pct": change,
        "peak_timestamp": tick.ts,
        "started_at": started,
        "zscore": hit.zscore,
        "volume_ratio": hit.volume_ratio,
        # Re-evaluating the same episode must not move when it was published or first detected.
        "published_at": seen.get("published_at") if same_tick and tick.published is None else tick.published,
        "detected_at": seen.get("detected_at") or round(now.timestamp() * 1000),
        # Whether it was notified is decided once, when it opened (or when it broke through its mute)
        "muted": seen.get("muted", silence.muted and hushed) and broke is None,
        "watcher": rule.watcher,
    }
    _break_through(anomaly, broke)
    return anomaly


def _multiple(rule: Rule, anomaly: Mapping[str, Any], hit: Crossing) -> float:
    """How many times its rule's threshold a move is: what `unless 2x` compares."""
    if rule.name == "zscore" and hit.zscore is not None:
        measure = abs(hit.zscore)
    elif rule.name == "volume" and hit.volume_ratio is not None:
        measure = hit.volume_ratio
    else:
        measure = abs(anomaly.get("peak_change_pct", anomaly["change_pct"]))
    return measure / rule.threshold_pct if rule.threshold_pct else 0.0


def _break_through(anomaly: dict[str, Any], broke: str | None) -> None:
    """The move broke through the mutes in force (`broke` says whose): it is notified after all."""
    if broke is not None:
        anomaly.update(muted=False, broke_through=broke)


def _deepen(anomaly: dict[str, Any], price: float, ts: int) -> bool:
    """A further move in the rule's direction updates the open anomaly instead of opening another.

    Returns whether the peak moved (the alert message then shows the new peak)."""
    change = round((price / anomaly["reference_price"] - 1) * 100, 4)
    if abs(change) > abs(anomaly["peak_change_pct"]):
        anomaly.update(peak_price=price, peak_change_pct=change, peak_timestamp=ts)
        return True
    return False


def _fold_for_good(state: SymbolState, windows: set[int], lateness_ms: int, tau_ms: float) -> None:
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


def _prune(
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


def _model(data: dict[str, Any]) -> Anomaly:
    """The anomaly as stored."""
    times = (
        "timestamp",
        "reference_timestamp",
        "peak_timestamp",
        "started_at",
        "published_at",
        "detected_at",
        "resolved_at",
    )
    status = {"status": "resolved"} if data.get("resolved_at") is not None else {}
    return Anomaly(**{**data, **{key: from_ms(data[key]) for key in times if data.get(key) is not None}, **status})
