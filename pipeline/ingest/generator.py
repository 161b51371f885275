"""Tick sources for `tickwatch generate`: synthetic markets with injected crashes, and pacing.

Everything here is pure (no Kafka): a scenario is a deterministic function of its seed, so a test, a demo
and a benchmark can replay exactly the same market and check the detector against the ground truth.
"""

from __future__ import annotations

import json
import math
import random
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count as count_from
from itertools import islice
from pathlib import Path
from typing import Any, Literal, cast

from pipeline.durations import parse_seconds
from pipeline.schema import Tick, iso, normalise_symbol, to_utc

# --- symbols ----------------------------------------------------------------------------------------

# Stock volatility is annualised over trading time and crypto over calendar time, so a simulated minute
# moves like a minute of the real session of each market.
STOCK_SECONDS_PER_YEAR = 252 * 6.5 * 3600
CRYPTO_SECONDS_PER_YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class Profile:
    """How a symbol trades: where its price starts and how much it moves (annualised volatility)."""

    price: float
    volatility: float
    crypto: bool = False

    @property
    def seconds_per_year(self) -> float:
        return CRYPTO_SECONDS_PER_YEAR if self.crypto else STOCK_SECONDS_PER_YEAR


# Interleaved so that a handful of default symbols already mixes stocks and crypto.
KNOWN_PROFILES: dict[str, Profile] = {
    "AAPL": Profile(230.0, 0.28),
    "MSFT": Profile(420.0, 0.25),
    "TSLA": Profile(250.0, 0.60),
    "NVDA": Profile(140.0, 0.50),
    "BTC-USD": Profile(95_000.0, 0.60, crypto=True),
    "AMZN": Profile(200.0, 0.33),
    "GOOGL": Profile(175.0, 0.30),
    "ETH-USD": Profile(3_300.0, 0.75, crypto=True),
    "META": Profile(580.0, 0.40),
    "JPM": Profile(240.0, 0.25),
    "BRK.B": Profile(470.0, 0.20),
    "SOL-USD": Profile(180.0, 0.90, crypto=True),
    "AMD": Profile(160.0, 0.55),
    "V": Profile(320.0, 0.22),
    "XOM": Profile(115.0, 0.25),
    "DOGE-USD": Profile(0.35, 0.90, crypto=True),
}
DEFAULT_STOCK_VOLATILITY = 0.35
DEFAULT_CRYPTO_VOLATILITY = 0.80
DEFAULT_SYMBOL_COUNT = 8


def profile_for(symbol: str) -> Profile:
    """A known symbol's profile, else a plausible one: price stable per name (not per seed), default vol."""
    if symbol in KNOWN_PROFILES:
        return KNOWN_PROFILES[symbol]
    price = round(random.Random(symbol).uniform(10.0, 500.0), 2)
    if symbol.endswith("-USD"):
        return Profile(price, DEFAULT_CRYPTO_VOLATILITY, crypto=True)
    return Profile(price, DEFAULT_STOCK_VOLATILITY)


def default_symbols(n: int) -> list[str]:
    """The first n well-known symbols, then synthetic `SYM013`, `SYM014`, ... for larger benchmarks."""
    if n < 1:
        raise ValueError("need at least one symbol")
    known = list(KNOWN_PROFILES)[:n]
    return known + [f"SYM{i:03d}" for i in range(len(known) + 1, n + 1)]


# --- durations, percentages, timestamps -----------------------------------------------------------


def parse_pct(value: str | float) -> float:
    """A percentage from `8%`, `8` or 8; the sign is given by the event kind, so it must be positive."""
    try:
        pct = float(str(value).strip().removesuffix("%")) if isinstance(value, str) else float(value)
    except ValueError:
        raise ValueError(f"percentage must be a number like 8 or 8%; got {value!r}") from None
    if not math.isfinite(pct) or pct <= 0:
        raise ValueError(f"percentage must be > 0; got {value!r}")
    return pct


def parse_start(value: str | datetime) -> datetime:
    """An aware UTC datetime from an ISO-8601 string or a (TOML) datetime; naive means UTC."""
    if isinstance(value, datetime):
        return to_utc(value)
    try:
        return to_utc(datetime.fromisoformat(str(value).strip()))
    except ValueError:
        raise ValueError(f"start must be ISO-8601, e.g. 2026-11-23T14:30:00Z; got {value!r}") from None


def parse_shift_to(value: str) -> datetime:
    """Where `--shift-to` moves a replay's first tick: `now` (to the second) or an ISO-8601 start."""
    if value.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_start(value)
    except ValueError:
        raise ValueError(
            f"--shift-to takes now or an ISO-8601 start such as 2026-11-23T14:30:00Z; got {value!r}"
        ) from None


# --- injected events ------------------------------------------------------------------------------

INJECT_FORM = "kind:symbol:pct%:duration@offset, e.g. drop:TSLA:8%:90s@10m"
EventKind = Literal["drop", "rise"]


def parse_kind(value: str) -> EventKind:
    """`drop` or `rise`, case-insensitive."""
    kind = str(value).strip().lower()
    if kind not in ("drop", "rise"):
        raise ValueError(f"event kind must be drop or rise; got {value!r}")
    return cast(EventKind, kind)


@dataclass
class InjectedEvent:
    """A scripted move: from `at_s` after the start, price goes `pct` % down or up over `duration_s`,
    linearly in log-price, and stays there (market noise continues on top)."""

    kind: EventKind
    symbol: str
    pct: float
    duration_s: float
    at_s: float

    def __post_init__(self) -> None:
        self.kind = parse_kind(self.kind)
        self.symbol = normalise_symbol(self.symbol)
        if not 0 < self.pct < (100 if self.kind == "drop" else math.inf):
            raise ValueError(
                f"{self.kind} pct must be > 0{' and < 100' if self.kind == 'drop' else ''}; got {self.pct}"
            )
        if self.duration_s < 0 or self.at_s < 0:
            raise ValueError("event duration and offset must be >= 0 seconds")

    @property
    def final_factor(self) -> float:
        """The price multiplier once the move is complete, e.g. 0.92 for an 8 % drop."""
        return 1 - self.pct / 100 if self.kind == "drop" else 1 + self.pct / 100

    def factor(self, elapsed_s: float) -> float:
        """The price multiplier `elapsed_s` seconds after the scenario start."""
        if elapsed_s < self.at_s:
            return 1.0
        done = 1.0 if self.duration_s == 0 else min((elapsed_s - self.at_s) / self.duration_s, 1.0)
        return math.exp(math.log(self.final_factor) * done)


def parse_inject(spec: str) -> InjectedEvent:
    """`drop:TSLA:8%:90s@10m` -> InjectedEvent. Symbols may contain `:` (e.g. `NASDAQ:TSLA`)."""
    move, at_sign, offset = spec.strip().rpartition("@")
    kind, _, rest = move.partition(":")
    parts = rest.rsplit(":", 2)
    if not at_sign or len(parts) != 3 or not all(parts):
        raise ValueError(f"bad event {spec!r}: expected {INJECT_FORM}")
    symbol, pct, duration = parts
    try:
        return InjectedEvent(parse_kind(kind), symbol, parse_pct(pct), parse_seconds(duration), parse_seconds(offset))
    except ValueError as error:
        raise ValueError(f"bad event {spec!r}: {error} (expected {INJECT_FORM})") from None


# --- scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A synthetic market: symbols ticking together every `interval_s` from `start` for `duration_s`
    (or for `count` ticks in all, when given), driven by `seed`, with scripted `events` on top."""

    symbols: tuple[str, ...]
    start: datetime
    interval_s: float = 1.0
    duration_s: float = 1800.0
    count: int | None = None
    seed: int = 0
    events: tuple[InjectedEvent, ...] = ()
    opening_prices: Mapping[str, float] = field(default_factory=dict)  # default: each symbol's profile price

    def __post_init__(self) -> None:
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("a scenario needs at least one symbol, each listed once")
        if self.start.tzinfo is None:
            raise ValueError("scenario start must be timezone-aware (UTC)")
        if self.interval_s <= 0 or self.duration_s <= 0 or (self.count is not None and self.count < 1):
            raise ValueError("interval, duration and count must be positive")
        strangers = sorted({event.symbol for event in self.events} - set(self.symbols))
        if strangers:
            raise ValueError(f"events name symbols not in the scenario: {', '.join(strangers)}")

    @classmethod
    def build(
        cls,
        *,
        symbols: Sequence[str] | None = None,
        symbol_count: int | None = None,
        start: str | datetime | None = None,
        interval_s: str | float = 1.0,
        duration: str | float = "30m",
        count: int | None = None,
        seed: int = 0,
        events: Iterable[InjectedEvent | str] = (),
        opening_prices: Mapping[str, float] | None = None,
    ) -> Scenario:
        """The one way CLI options and scenario files become a Scenario: parses the human forms, defaults
        the start to now, and adds any symbol an event names, so `--inject drop:XYZ:...` just works."""
        if symbols is not None and symbol_count is not None:
            raise ValueError("give symbols or symbol_count, not both")
        if symbols is None:
            names = default_symbols(DEFAULT_SYMBOL_COUNT if symbol_count is None else symbol_count)
        else:
            names = [normalise_symbol(symbol) for symbol in symbols]
        parsed = tuple(parse_inject(e) if isinstance(e, str) else e for e in events)
        names += [e.symbol for e in parsed if e.symbol not in names]
        return cls(
            symbols=tuple(dict.fromkeys(names)),
            start=parse_start(start) if start is not None else datetime.now(UTC).replace(microsecond=0),
            interval_s=parse_seconds(interval_s),
            duration_s=parse_seconds(duration),
            count=count,
            seed=seed,
            events=parsed,
            opening_prices=dict(opening_prices or {}),
        )

    @property
    def steps(self) -> int:
        """Event times in `duration_s` (rounded so 1.1 s / 0.1 s is 11, not 12)."""
        return max(1, math.ceil(round(self.duration_s / self.interval_s, 9)))

    @property
    def tick_count(self) -> int:
        """How many ticks `ticks()` yields: what a progress bar needs as its total."""
        return self.count if self.count is not None else self.steps * len(self.symbols)

    def ticks(self) -> Iterator[Tick]:
        """Every symbol at every event time, in time order. Events only scale prices and never consume
        random draws, so a run with events divided by the same run without them is exactly the events."""
        return islice(self._market(), self.tick_count)

    def _market(self) -> Iterator[Tick]:
        rng = random.Random(self.seed)
        profiles = [profile_for(symbol) for symbol in self.symbols]
        step_vols = [p.volatility * math.sqrt(self.interval_s / p.seconds_per_year) for p in profiles]
        log_prices = [
            math.log(self.opening_prices.get(symbol, profile.price))
            for symbol, profile in zip(self.symbols, profiles, strict=True)
        ]
        events = {s: [e for e in self.events if e.symbol == s] for s in self.symbols}
        for step in count_from():
            elapsed_s = step * self.interval_s
            timestamp = self.start + timedelta(seconds=elapsed_s)
            for i, symbol in enumerate(self.symbols):
                if step:
                    log_prices[i] += step_vols[i] * rng.gauss(0.0, 1.0)
                volume = max(1, round(rng.lognormvariate(math.log(300), 0.8)))
                factor = math.prod(event.factor(elapsed_s) for event in events[symbol])
                price = quote(math.exp(log_prices[i]) * factor)
                yield Tick(symbol=symbol, timestamp=timestamp, price=price, volume=volume)

    def ground_truth(self) -> list[dict[str, Any]]:
        """What a perfect detector should find: one record per injected event, with wall-clock bounds."""
        return [
            {
                "kind": event.kind,
                "symbol": event.symbol,
                "pct": event.pct,
                "duration_s": event.duration_s,
                "start": iso(self.start + timedelta(seconds=event.at_s)),
                "end": iso(self.start + timedelta(seconds=event.at_s + event.duration_s)),
            }
            for event in self.events
        ]

    def write_ground_truth(self, path: str | Path) -> None:
        """Ground truth as JSON lines, for scoring a run afterwards."""
        lines = [json.dumps(record) + "\n" for record in self.ground_truth()]
        Path(path).write_text("".join(lines), encoding="utf-8")


def quote(price: float) -> float:
    """Cents above 1, four significant digits below, like real quotes (and never rounded to zero)."""
    return round(price, 2) if price >= 1 else float(f"{price:.4g}")


SCENARIO_KEYS = {"symbols", "symbol_count", "interval_s", "duration", "count", "seed", "start"}
EVENT_KEYS = {"kind", "symbol", "pct", "duration", "at"}


def load_scenario(path: str | Path) -> Scenario:
    """A Scenario from a TOML file (`[scenario]` plus `[[events]]`); errors name the file."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
        return Scenario.build(**_scenario_options(document))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None


def _scenario_options(document: Mapping[str, Any]) -> dict[str, Any]:
    options = dict(document.get("scenario", {}))
    _reject_unknown(options, SCENARIO_KEYS, "[scenario]")
    if isinstance(options.get("symbols"), str):
        raise ValueError('[scenario] symbols must be a list, e.g. symbols = ["TSLA", "BTC-USD"]')
    events = []
    for number, table in enumerate(document.get("events", []), start=1):
        _reject_unknown(table, EVENT_KEYS, f"[[events]] #{number}")
        missing = EVENT_KEYS - set(table)
        if missing:
            raise ValueError(f"[[events]] #{number} lacks {', '.join(sorted(missing))}")
        events.append(
            InjectedEvent(
                parse_kind(table["kind"]),
                table["symbol"],
                parse_pct(table["pct"]),
                parse_seconds(table["duration"]),
                parse_seconds(table["at"]),
            )
        )
    return {**options, "events": events}


def _reject_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    """A typo such as `durations` would otherwise silently fall back to the default."""
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")


# --- pacing ---------------------------------------------------------------------------------------


def parse_speed(value: str) -> float | None:
    """`max` (None: as fast as Kafka takes it) or event seconds per wall second, e.g. 1 or 60."""
    text = value.strip().lower()
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be max or a number > 0 (1 = real time, 60 = a minute per second); got {value!r}")
    return speed


def pace(
    ticks: Iterable[Tick],
    speed: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Tick]:
    """Yields ticks no sooner than their event time allows: `speed` event seconds per wall second
    (1 = real time, 60 = a minute per second, None = as fast as possible). Late ticks are not delayed."""
    if speed is not None and speed <= 0:
        raise ValueError("speed must be > 0 (or None for as fast as possible)")
    origin: tuple[datetime, float] | None = None
    for tick in ticks:
        if speed is not None:
            if origin is None:
                origin = (tick.timestamp, clock())
            due = origin[1] + (tick.timestamp - origin[0]).total_seconds() / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield tick
