"""`tickwatch bench`, detection section: what each rule set costs per tick, measured on `detection.advance` alone.

Pure (no stack): the same synthetic market is folded through `advance` with its state round-tripped through
the Redis encoding, as workers do per batch, for the rule sets of issue 7. Kafka, Redis and Elasticsearch
are not in these figures; the pipeline figures of the bench are.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from pipeline.calendars import sessions_ms
from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.state import decode, encode
from pipeline.ingest.generator import Scenario, default_symbols
from pipeline.schema import RuleName, to_ms

THRESHOLDS: dict[RuleName, float] = {"drop": 5.0, "rise": 5.0, "zscore": 6.0, "volume": 5.0, "gap": 3.0}
PRICE: tuple[RuleName, ...] = ("drop", "rise")
EVERY: tuple[RuleName, ...] = ("drop", "rise", "zscore", "volume")


def _rules(names: tuple[RuleName, ...], confirm_ticks: int) -> list[Rule]:
    return [Rule(name, THRESHOLDS[name], 300, 300, confirm_ticks=confirm_ticks) for name in names]


def _watches(count: int, long_window: int = 300) -> list[Rule]:
    """`count` personal watches of one symbol, as people set them: drop, rise or zscore, half of them over the
    channel's 5 minutes and half over `long_window`, each its own threshold (10,000 watches over 500 symbols is 20
    a symbol)."""
    kinds: list[tuple[RuleName, int, float, float]] = [
        ("drop", 300, 2.0, 6.0),
        ("rise", 300, 2.0, 6.0),
        ("zscore", 300, 4.0, 8.0),
        ("drop", long_window, 3.0, 9.0),
        ("rise", long_window, 3.0, 9.0),
        ("zscore", long_window, 4.0, 8.0),
    ]
    found = []
    for j in range(count):
        name, window, low, high = kinds[j % len(kinds)]
        found.append(Rule(name, round(low + (high - low) * ((j * 0.618) % 1), 1), window, window, 2, watcher=f"U{j}"))
    return found


XNYS = "XNYS"
WATCHES_PER_SYMBOL = 20
# name -> (rules, clock guard ms, calendar whose sessions windows stay within)
VARIANTS: dict[str, tuple[list[Rule], int | None, str | None]] = {
    "drop + rise, alert at once (before)": (_rules(PRICE, 1), None, None),
    "drop + rise, confirmed on 2 ticks": (_rules(PRICE, 2), None, None),
    "+ zscore + volume": (_rules(EVERY, 2), None, None),
    "+ clock guard": (_rules(EVERY, 2), 60_000, None),
    "+ calendar (XNYS sessions)": (_rules(EVERY, 2), 60_000, XNYS),
    "+ gap rule (all on)": (_rules((*EVERY, "gap"), 2), 60_000, XNYS),
    f"+ {WATCHES_PER_SYMBOL} personal watches a symbol, 5 min": (
        _rules((*EVERY, "gap"), 2) + _watches(WATCHES_PER_SYMBOL),
        60_000,
        XNYS,
    ),
    f"+ {WATCHES_PER_SYMBOL} personal watches a symbol, half 15 min": (
        _rules((*EVERY, "gap"), 2) + _watches(WATCHES_PER_SYMBOL, long_window=900),
        60_000,
        XNYS,
    ),
}


def detection_cost(
    console: Console, *, symbols: int = 50, duration: str = "30m", batch_seconds: int = 5, repeats: int = 2
) -> dict[str, float]:
    """µs per tick of `advance` (state encode + decode included) by rule set: the best of `repeats`
    interleaved runs, as the machine is shared. Each symbol gets `batch_seconds` ticks per batch."""
    market = Scenario.build(
        symbols=default_symbols(symbols),
        start=datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
        interval_s=1,
        duration=duration,
        seed=3,
        events=["drop:AAPL:8%:60s@20m"],
    )
    by_symbol: dict[str, list[TickPoint]] = {}
    for tick in market.ticks():
        by_symbol.setdefault(tick.symbol, []).append(TickPoint(to_ms(tick.timestamp), tick.price, tick.volume))
    total = sum(len(ticks) for ticks in by_symbol.values())
    now = market.start + timedelta(seconds=market.duration_s)
    figures: dict[str, float] = {}
    for _ in range(repeats):
        for name, (rules, skew, calendar) in VARIANTS.items():
            sessions = sessions_ms(calendar) if calendar else None
            states = {symbol: SymbolState() for symbol in by_symbol}
            started = time.perf_counter()
            for begin in range(0, market.steps, batch_seconds):
                for symbol, ticks in by_symbol.items():
                    state = states[symbol]
                    advance(
                        state,
                        symbol,
                        ticks[begin : begin + batch_seconds],
                        rules,
                        lateness_ms=30_000,
                        now=now,
                        clock_skew_ms=skew,
                        sessions=sessions,
                    )
                    states[symbol] = decode(encode(state))
            us = (time.perf_counter() - started) / total * 1e6
            figures[name] = min(us, figures.get(name, us))
    table = Table(
        "rule set",
        "µs per tick",
        "ticks/s per core",
        title=f"detection alone: {total:,} ticks of {symbols} symbols, {batch_seconds} per symbol and batch",
    )
    for name, us in figures.items():
        table.add_row(name, f"{us:.1f}", f"{1e6 / us:,.0f}")
    console.print(table)
    return figures
