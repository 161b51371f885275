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
from typing import Any

from pipeline.detect.market import Market
from pipeline.detect.rules import (
    BASELINE_RULES,
    GAP,
    OFF_HOURS_REVERT_SHARE,
    REVERT_SHARE,
    Crossing,
    Pending,
    Rule,
    Sessions,
    WindowChecks,
    bad_print_reason,
    confirmed,
    contradicts,
    episode_key,
)
from pipeline.detect.silence import Hush, Silence
from pipeline.detect.watch_groups import WatchGroups
from pipeline.detect.window import (
    Episode,
    SymbolState,
    TickPoint,
    fold_for_good,
    insert,
    ongoing,
    prune,
    settle,
    tentative_ids,
)
from pipeline.schema import Anomaly, from_ms, to_ms

__all__ = ["Episode", "Outcome", "Rule", "SymbolState", "TickPoint", "advance"]


def anomaly_id(symbol: str, rule: str, reference_ts: int) -> str:
    digest = hashlib.blake2b(f"{symbol}|{rule}|{reference_ts}".encode(), digest_size=10).hexdigest()
    return f"{symbol.lower().replace('/', '-')}-{rule}-{digest}"


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
    late, published, duplicates, earliest, skewed = insert(
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
    settle(state, {**run.episodes, **run.watching}, run.changes, lateness_ms)
    outcome = run.outcome(late, duplicates)
    # The zscore and volume rules measure against ticks older than the window and the lateness: keep those
    # in the window until they are folded into the baseline.
    baseline = any(rule.name in BASELINE_RULES for rule in active)
    windows = {rule.window_ms for rule in active if rule.name in BASELINE_RULES}
    fold_for_good(state, windows, lateness_ms, baseline_seconds * 1000)
    prune(
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
        self.watches = WatchGroups([rule for rule in rules if rule.watcher is not None])
        self.market, self.beta = market, state.beta.value
        # Each channel rule's episode, and the watches' under way (an armed watch has none: thousands cost nothing)
        self.episodes: dict[str, Episode] = {rule.key: source.get(rule.key, Episode()).copy() for rule in self.rules}
        self.watching: dict[str, Episode] = {
            key: source[key].copy() for key in self.watches.by_key if key in source and ongoing(source[key])
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
        state at the watermark (re-using the ids of the anomalies opened since, see `tentative_ids`).

        Enabled rules are evaluated; a disabled rule only while it still has an episode to end."""
        watermark = state.watermark if state.watermark is not None else state.ts[0] - 1
        if state.evaluated_upto is not None and earliest > state.evaluated_upto:
            start, source, changes, reusable = state.evaluated_upto, state.live, state.changes, {}
        else:
            start, source, changes, reusable = watermark, state.settled, [], tentative_ids(state, watermark)
        evaluated = [rule for rule in rules if rule.enabled or ongoing(source.get(rule.key))]
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
            if not ongoing(episode):
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
