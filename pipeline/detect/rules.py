"""The rules' arithmetic and the guards against bad data: pure functions and running figures, O(1) per tick.

`pipeline.detection` drives them over a symbol's window (sorted by event time); nothing here does I/O or
knows about episodes. Each rule is a condition on one tick and the window of W before it:

- `drop` / `rise`: the price against the window's high / low (`price_crossed`);
- `zscore`: the log return over the window in units of the symbol's own volatility over W (`zscore`);
- `volume`: the volume traded in the window against the symbol's usual volume for W (`volume_ratio`);
- `gap`: at a session's first tick, the move from the last tick before the session opened (`gap_pct`);
- `relative`: the move over the window net of β times the benchmark's over the same span (pipeline.detect.market).

No window reaches back across a closed market: given the sessions' opening times of the symbol's exchange, a
window starts at the latest open at the earliest (so an overnight move is a gap, never a drop).

The two last measure against a `Baseline`: exponentially decayed sums over the ticks *older* than the
window (and the lateness), so the move being judged never inflates its own yardstick, and a replay in any
batching folds the same ticks in the same order.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from pipeline.detect.market import Market
from pipeline.schema import RuleName

PRICE_RULES: tuple[RuleName, ...] = ("drop", "rise")
GAP: RuleName = "gap"
RELATIVE: RuleName = "relative"
BASELINE_RULES: tuple[RuleName, ...] = ("zscore", "volume")
# A floor under volatility (1 basis point per √minute): a symbol whose price never moved would otherwise make
# any move infinitely many sigma.
MIN_VARIANCE_PER_SECOND = 1e-4**2 / 60
# A contradicting tick takes back at least this share of the outlier's move; outside regular hours, where prints
# are thin and wild, a smaller share shows one up.
REVERT_SHARE = 0.5
OFF_HOURS_REVERT_SHARE = 0.25


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


# --- the conditions ---------------------------------------------------------------------------------


def price_crossed(rule: RuleName, price: float, extreme: float, threshold_pct: float) -> bool:
    """drop: price <= (1 - X) * the window's high; rise: price >= (1 + X) * the window's low."""
    if rule == "drop":
        return price <= extreme * (1 - threshold_pct / 100)
    return price >= extreme * (1 + threshold_pct / 100)


def zscore(price: float, start_price: float, elapsed_seconds: float, variance_per_second: float) -> float:
    """ln(price / start_price) in sigmas of a move that long: sigma = sqrt(variance per second * elapsed)."""
    sigma = math.sqrt(max(variance_per_second, MIN_VARIANCE_PER_SECOND) * max(elapsed_seconds, 1e-3))
    return math.log(price / start_price) / sigma


def gap_pct(price: float, before_open: float) -> float:
    """The opening move in %: the session's first price against the last one before it opened."""
    return (price / before_open - 1) * 100


def volume_ratio(window_volume: float, volume_per_second: float, window_seconds: float) -> float | None:
    """Volume traded in the window over the usual volume for that long; None when the usual is zero."""
    usual = volume_per_second * window_seconds
    return window_volume / usual if usual > 0 else None


# --- what the parameters may be (checked alike in the settings and for per-symbol overrides) ----------------

MAX_WINDOW_SECONDS = 86_400
MAX_CONFIRM_TICKS = 100
MAX_CONFIRM_SECONDS = 3600


def threshold_problem(rule: RuleName, threshold: float) -> str | None:
    """Why `threshold` cannot be `rule`'s, or None; 0 turns any rule off."""
    if threshold == 0:
        return None
    if rule == "zscore":
        return None if 1 <= threshold <= 50 else "a zscore threshold is k sigmas from 1 to 50 (0: off), e.g. zscore 4"
    if rule == "volume":
        return (
            None
            if 1 < threshold <= 1000
            else (
                "a volume threshold is a multiple of the usual volume above 1 and at most 1000 (0: off), e.g. volume 5x"
            )
        )
    return None if 0 < threshold < 100 else "a threshold is a percentage from 0 (off) to below 100, e.g. 3%"


# --- bad data -----------------------------------------------------------------------------------------


def skew_reason(ts: int, newest: int | None, now_ms: int, tolerance_ms: int) -> str | None:
    """Why a tick's timestamp cannot be trusted, or None.

    Suspect: dated more than `tolerance_ms` ahead of the real clock *and* of the symbol's newest tick. A
    tick ahead of the clock but close to the symbol's own ticks is a feed replayed faster than real time
    (`tickwatch generate --speed max`), not one bad clock, so it passes.
    """
    ahead = ts - now_ms
    if ahead <= tolerance_ms:
        return None
    if newest is not None and ts - newest <= tolerance_ms:
        return None
    after = "no earlier tick of the symbol" if newest is None else f"{(ts - newest) / 1000:.0f}s after its newest tick"
    return f"timestamp {ahead / 1000:.0f}s ahead of the clock, {after}"


def contradicts(reference: float, outlier: float, price: float, share: float = REVERT_SHARE) -> bool:
    """`price` takes back at least half of the move from `reference` to `outlier`: the outlier was a bad print."""
    move = outlier - reference
    return move != 0 and (outlier - price) / move >= share


def bad_print_reason(rule: str, reference: float, outlier: float, price: float) -> str:
    change = (outlier / reference - 1) * 100
    return f"isolated print: {rule} {change:+.1f}% taken back by the next tick ({price:g})"


class Pending(NamedTuple):
    """A condition that holds but is not confirmed yet (Alertmanager's pending state)."""

    since: int  # event time of the first tick it held on
    ticks: int  # consecutive evaluated ticks it has held on
    reference_price: float  # what the first tick's move was measured from
    first_price: float


def confirmed(pending: Pending, ts: int, confirm_ticks: int, confirm_seconds: float) -> bool:
    """The condition has held on `confirm_ticks` ticks in a row and for `confirm_seconds` of event time (like
    Alertmanager's `for:`, which also needs a second evaluation)."""
    return pending.ticks >= confirm_ticks and ts - pending.since >= confirm_seconds * 1000


# --- running figures ------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """What is usual for a symbol: exponentially decayed sums (time constant τ) over ticks folded in
    event-time order.

    `squared_returns` = Σ ln(pⱼ/pⱼ₋₁)² and `volume` = Σ vⱼ, each term weighted e^(-(last - tⱼ)/τ); divided by
    the decayed time they cover, τ(1 - e^(-(last - first)/τ)), they are a variance and a volume per second.
    """

    first_ts: int | None = None
    last_ts: int | None = None
    last_price: float = 0.0
    squared_returns: float = 0.0
    volume: float = 0.0

    def fold(self, ts: int, price: float, volume: float, tau_ms: float) -> None:
        if self.last_ts is None:
            self.first_ts, self.last_ts, self.last_price = ts, ts, price
            return
        decay = math.exp(-(ts - self.last_ts) / tau_ms)
        step = math.log(price / self.last_price)
        self.squared_returns = self.squared_returns * decay + step * step
        self.volume = self.volume * decay + (0.0 if math.isnan(volume) else volume)
        self.last_ts, self.last_price = ts, price

    def covered_seconds(self, tau_ms: float) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return tau_ms / 1000 * -math.expm1(-(self.last_ts - self.first_ts) / tau_ms)

    def history_ms(self) -> int:
        return 0 if self.first_ts is None or self.last_ts is None else self.last_ts - self.first_ts

    def per_second(self, tau_ms: float) -> tuple[float, float] | None:
        """(variance, volume) per second, None before any time is covered."""
        covered = self.covered_seconds(tau_ms)
        return None if covered <= 0 else (self.squared_returns / covered, self.volume / covered)

    def copy(self) -> Baseline:
        return Baseline(self.first_ts, self.last_ts, self.last_price, self.squared_returns, self.volume)

    def to_list(self) -> list[float | int | None]:
        return [self.first_ts, self.last_ts, self.last_price, self.squared_returns, self.volume]

    @classmethod
    def from_list(cls, values: Sequence[float | int | None] | None) -> Baseline:
        if not values:
            return cls()
        first, last, price, squares, volume = values
        return cls(
            None if first is None else int(first),
            None if last is None else int(last),
            float(price or 0),
            float(squares or 0),
            float(volume or 0),
        )


class SlidingExtremes:
    """max and min of prices[lo:hi] while the window slides right (neither end ever moves left).

    Monotonic queues of indices make each step O(1) amortised; re-scanning the window for every tick cost
    a fifth of a worker's time with a 5-minute window of 1-second ticks. Indices in `excluded` (bad prints)
    are never offered; `reset()` after excluding one already offered rebuilds the queues on the next call.
    """

    def __init__(self, prices: Sequence[float], excluded: Collection[int] = ()) -> None:
        self.prices = prices
        self.excluded = excluded
        self.end: int | None = None  # prices[:end] have been offered to the queues
        self.highs: deque[int] = deque()  # indices with decreasing prices: the front is the window's max
        self.lows: deque[int] = deque()  # indices with increasing prices: the front is the window's min

    def reset(self) -> None:
        self.end = None
        self.highs.clear()
        self.lows.clear()

    def __call__(self, lo: int, hi: int) -> tuple[float, float] | None:
        """(max, min) of prices[lo:hi], None for an empty window; `lo` and `hi` must not decrease."""
        if self.end is None:
            self._fill(lo, hi)
        end = self.end or 0  # filled above
        prices, highs, lows, excluded = self.prices, self.highs, self.lows, self.excluded
        for j in range(max(end, lo), hi):
            if excluded and j in excluded:
                continue
            price = prices[j]
            while highs and prices[highs[-1]] <= price:
                highs.pop()
            highs.append(j)
            while lows and prices[lows[-1]] >= price:
                lows.pop()
            lows.append(j)
        self.end = max(end, hi)
        while highs and highs[0] < lo:
            highs.popleft()
        while lows and lows[0] < lo:
            lows.popleft()
        if not highs:
            return None
        return prices[highs[0]], prices[lows[0]]

    def _fill(self, lo: int, hi: int) -> None:
        """The queues of a first window at once. Each batch starts a window anew, so this runs per batch over a
        whole window: scanning it backwards (an index stays iff it beats every later one) costs a third of
        offering each index in turn."""
        prices, excluded = self.prices, self.excluded
        highs: list[int] = []
        lows: list[int] = []
        high, low = -math.inf, math.inf
        for j in range(hi - 1, lo - 1, -1):
            if excluded and j in excluded:
                continue
            price = prices[j]
            if price > high:
                highs.append(j)
                high = price
            if price < low:
                lows.append(j)
                low = price
        highs.reverse()
        lows.reverse()
        self.highs, self.lows, self.end = deque(highs), deque(lows), hi

    def latest_at(self, lo: int, hi: int, price: float) -> int:
        """The latest index in [lo, hi) at `price` (the window's extreme, so one exists), bad prints skipped."""
        for j in range(hi - 1, lo - 1, -1):
            if self.prices[j] == price and j not in self.excluded:
                return j
        raise ValueError(f"{price} is not in the window")


class SlidingSum:
    """Σ values[lo:hi] (NaN and excluded indices count 0) while the window slides right."""

    def __init__(self, values: Sequence[float], excluded: Collection[int] = ()) -> None:
        self.values = values
        self.excluded = excluded
        self.lo = self.hi = 0
        self.total = 0.0

    def reset(self) -> None:
        self.lo = self.hi = 0
        self.total = 0.0

    def _sum(self, start: int, end: int) -> float:
        """Σ values[start:end] (the first call of a batch sums a whole window: one generator, no call per index)."""
        values, excluded = self.values, self.excluded
        # NaN (no volume) != NaN
        return sum(value for j in range(start, end) if (value := values[j]) == value and j not in excluded)

    def __call__(self, lo: int, hi: int) -> float:
        if lo >= self.hi:  # the window moved past everything summed: start again
            self.lo = self.hi = lo
            self.total = 0.0
        self.total += self._sum(self.hi, hi) - self._sum(self.lo, lo)
        self.lo, self.hi = lo, max(self.hi, hi)
        return max(self.total, 0.0)  # float drift must not make a volume negative


@dataclass(frozen=True)
class Sessions:
    """An exchange's sessions as detection needs them: opening and closing times (epoch ms, sorted, aligned);
    empty for a market open 24/7."""

    opens: tuple[int, ...] = ()
    closes: tuple[int, ...] = ()


ALWAYS_OPEN = Sessions()


class Crossing(NamedTuple):
    """A rule's condition holds at a tick: the reference tick it is measured from, and the measures."""

    ref: int  # index of the reference tick in the window's arrays
    zscore: float | None = None
    volume_ratio: float | None = None


class Reading(NamedTuple):
    """What a rule reads at a tick: its `size` in the threshold's unit (|%| below the window's high for drop, above
    its low for rise, |%| for gap and relative, sigmas for zscore, the multiple for volume), and what its crossing
    needs."""

    size: float
    ref: int | None  # the reference tick's index (None for drop and rise: found only once they hold)
    extreme: float = 0.0  # drop and rise: the window's high or low
    lo: int = 0  # drop and rise: the window's first index
    zscore: float | None = None
    volume_ratio: float | None = None


class Limits(Protocol):
    """What a rule check needs to know of one rule (pipeline.detection.Rule is one)."""

    @property
    def name(self) -> RuleName: ...

    @property
    def threshold_pct(self) -> float: ...

    @property
    def window_ms(self) -> int: ...


class WindowChecks:
    """Every rule's condition at successive ticks of one symbol's sorted arrays, O(1) amortised per tick.

    One sliding window (extremes, volume sum, baseline cursor) per window length. The baseline of a tick at
    t holds the ticks older than t - W - lateness: `baseline` covers those already pruned from the arrays,
    and each window length folds the rest from the arrays into its own copy as t advances.
    """

    def __init__(
        self,
        ts: Sequence[int],
        prices: Sequence[float],
        volumes: Sequence[float],
        *,
        excluded: set[int],
        baseline: Baseline,
        tau_ms: float,
        lateness_ms: int,
        sessions: Sessions | None = None,
        market: Market | None = None,
        beta: float = 1.0,
        folded: Mapping[int, Baseline] | None = None,
    ) -> None:
        self.ts, self.prices, self.volumes = ts, prices, volumes
        self.market, self.beta = market, beta
        self.sessions = sessions or ALWAYS_OPEN
        self._session: tuple[float, float, int | None, float] = (math.inf, -math.inf, None, math.inf)  # none yet
        self.excluded = excluded
        self.baseline, self.tau_ms, self.lateness_ms = baseline, tau_ms, lateness_ms
        self.extremes: dict[int, SlidingExtremes] = {}
        self.sums: dict[int, SlidingSum] = {}
        self.cursors: dict[int, tuple[int, Baseline]] = {}
        self.folded = folded or {}  # window -> its usual folded by earlier batches (SymbolState.folded)
        self._readings: dict[tuple[str, int], tuple[int, Reading | None]] = {}  # (rule, window) -> (tick, reading)

    def exclude(self, index: int) -> None:
        """Take a tick out of every window from now on (it was found to be a bad print)."""
        self.excluded.add(index)
        self._readings.clear()
        for extremes in self.extremes.values():
            extremes.reset()
        for sums in self.sums.values():
            sums.reset()

    def session_open(self, ts: int) -> int | None:
        """The opening time of the latest session opened at or before `ts` (None: 24/7, or before the calendar).
        Kept with the span it holds for (to the next open): consecutive ticks, and every rule of one tick, ask
        about the same session."""
        return self._lookup(ts)[2]

    def off_hours(self, ts: int) -> bool:
        """`ts` falls outside regular hours: after its session's close, or before the calendar's first open."""
        if not self.sessions.opens:
            return False
        _, _, opened, close = self._lookup(ts)
        return opened is None or ts >= close

    def _lookup(self, ts: int) -> tuple[float, float, int | None, float]:
        """(start, end, open, close) of the session `ts` falls in, from its open to the next one."""
        if self._session[0] <= ts < self._session[1]:
            return self._session
        opens, closes = self.sessions.opens, self.sessions.closes
        k = bisect.bisect_right(opens, ts) - 1
        opened = opens[k] if k >= 0 else None
        following = opens[k + 1] if k + 1 < len(opens) else math.inf
        self._session = (opened or -math.inf, following, opened, closes[k] if k >= 0 else math.inf)
        return self._session

    def check(self, rule: Limits, i: int) -> Crossing | None:
        """Whether `rule` holds at tick `i`, and the crossing it measures from."""
        found = self.reading(rule.name, rule.window_ms, i)
        if found is None:
            return None
        if rule.name in PRICE_RULES:
            if not price_crossed(rule.name, self.prices[i], found.extreme, rule.threshold_pct):
                return None
        elif found.size < rule.threshold_pct:
            return None
        return self.crossing(rule.window_ms, i, found)

    def measure(self, name: RuleName, window_ms: int, i: int) -> Reading | None:
        """Rule `name`'s reading at tick `i` (its `size` in the threshold's unit): many thresholds of one rule and
        window (personal watches) then cost one reading, not one check each."""
        return self.reading(name, window_ms, i)

    def crossing(self, window_ms: int, i: int, found: Reading) -> Crossing:
        """The crossing of a reading that met its threshold: for drop and rise, the latest tick at the window's
        extreme (the move is measured from where the price last stood there)."""
        ref = found.ref if found.ref is not None else self.extremes[window_ms].latest_at(found.lo, i, found.extreme)
        return Crossing(ref, zscore=found.zscore, volume_ratio=found.volume_ratio)

    def reading(self, name: RuleName, window_ms: int, i: int) -> Reading | None:
        """What rule `name` reads at tick `i` over `window_ms` (None: nothing to measure yet), kept for the tick:
        every rule and watch of that name and window asks the same."""
        cached = self._readings.get((name, window_ms))
        if cached is not None and cached[0] == i:
            return cached[1]
        found = self._read(name, window_ms, i)
        self._readings[(name, window_ms)] = (i, found)
        return found

    def _read(self, name: RuleName, window_ms: int, i: int) -> Reading | None:
        ts, price = self.ts[i], self.prices[i]
        opened = self.session_open(ts) if self.sessions.opens else None
        if name == GAP:
            before = next((j for j in range(i - 1, -1, -1) if j not in self.excluded), None)
            if opened is None or before is None or self.ts[before] >= opened:
                return None
            return Reading(abs(gap_pct(price, self.prices[before])), before)
        lo, window = self._span(window_ms, i, ts, opened)
        if window is None:
            return None
        if name in PRICE_RULES:
            extreme = window[0] if name == "drop" else window[1]
            moved = (1 - price / extreme) * 100 if name == "drop" else (price / extreme - 1) * 100
            return Reading(moved, None, extreme, lo)
        start = next(j for j in range(lo, i) if j not in self.excluded)  # window is not None: one exists
        if name == RELATIVE:
            if self.market is None:
                return None
            own = self.market.own_move(self.ts[start], self.prices[start], ts, price, self.beta)
            return None if own is None else Reading(abs(own), start)
        usual = self._usual(window_ms, ts)
        if usual is None:
            return None  # not enough history yet
        if name == "zscore":
            score = zscore(price, self.prices[start], (ts - self.ts[start]) / 1000, usual[0])
            return Reading(abs(score), start, zscore=round(score, 3))
        if window_ms not in self.sums:
            self.sums[window_ms] = SlidingSum(self.volumes, self.excluded)
        ratio = volume_ratio(self.sums[window_ms](lo, i + 1), usual[1], window_ms / 1000)
        return None if ratio is None else Reading(ratio, start, volume_ratio=round(ratio, 3))

    def _span(self, window_ms: int, i: int, ts: int, opened: int | None) -> tuple[int, tuple[float, float] | None]:
        """(first index, (max, min) or None if empty) of tick `i`'s window of `window_ms`, within its session."""
        lo = bisect.bisect_left(self.ts, max(ts - window_ms, opened or 0), 0, i)
        if window_ms not in self.extremes:
            self.extremes[window_ms] = SlidingExtremes(self.prices, self.excluded)
        return lo, self.extremes[window_ms](lo, i)

    def _resume(self, window_ms: int) -> tuple[int, Baseline]:
        """Where this window's usual starts folding: after what earlier batches folded for it for good (`folded`),
        else the pruned ticks' baseline and the arrays from their start."""
        stored = self.folded.get(window_ms)
        if stored is None or stored.last_ts is None:
            return 0, self.baseline.copy()
        return bisect.bisect_right(self.ts, stored.last_ts), stored.copy()

    def _usual(self, window_ms: int, ts: int) -> tuple[float, float] | None:
        """(variance, volume) per second before t - W - lateness; None with less than W of history there."""
        cursor, baseline = self.cursors.get(window_ms) or self._resume(window_ms)
        cut = ts - window_ms - self.lateness_ms
        while cursor < len(self.ts) and self.ts[cursor] < cut:
            if cursor not in self.excluded:
                baseline.fold(self.ts[cursor], self.prices[cursor], self.volumes[cursor], self.tau_ms)
            cursor += 1
        self.cursors[window_ms] = (cursor, baseline)
        if baseline.history_ms() < window_ms:
            return None
        return baseline.per_second(self.tau_ms)
