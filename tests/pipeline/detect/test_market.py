"""Moves against the market (pure): the benchmark's track, β from a symbol's own history, each alert's market and
own move, and the `relative` rule."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.detect.backtest import count_alerts
from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.market import BETA_STEP_MS, MIN_RETURNS, Beta, Market, Track, benchmark_for
from pipeline.schema import to_ms

NOW = datetime(2026, 12, 1, tzinfo=UTC)
START = to_ms(NOW - timedelta(hours=6))
DROP = Rule("drop", 5.0, 600, 600)
RELATIVE = Rule("relative", 3.0, 600, 600)


def test_the_track_gives_the_last_price_at_or_before_a_time_and_keeps_its_horizon():
    track = Track()
    track.add([(1_000, 100.0), (1_500, 101.0), (3_000, 102.0), (2_000, 99.0)], horizon_ms=10_000)
    assert track.ts == [1_500, 2_000, 3_000]  # one point per second: the newest of its second
    assert track.price_at(999) is None and track.price_at(2_999) == 99.0 and track.price_at(9_999) == 102.0
    assert track.move_pct(2_000, 3_000) == pytest.approx((102 / 99 - 1) * 100)
    track.add([(20_000, 90.0), (25_000, 91.0)], horizon_ms=10_000)
    assert track.ts == [3_000, 20_000, 25_000]  # the point before the horizon stays, so its start has a price
    assert Track.decode(track.encode()) == track


def test_beta_is_the_regression_of_own_returns_on_the_market_and_one_until_known():
    rng = random.Random(7)
    beta, market, price = Beta(), 100.0, 50.0
    for i in range(MIN_RETURNS + 200):
        step = rng.gauss(0, 0.002)
        market *= math.exp(step)
        price *= math.exp(1.5 * step + rng.gauss(0, 0.0005))
        beta.fold(START + i * BETA_STEP_MS, price, market, tau_ms=5 * 86_400_000)
        if i < MIN_RETURNS:
            assert beta.value == 1.0
    assert beta.value == pytest.approx(1.5, abs=0.05)
    assert Beta.from_list(beta.to_list()) == beta


def test_a_symbol_takes_its_groups_benchmark_before_its_calendars_and_never_its_own():
    benchmarks = {"XNYS": "SPY", "group:semis": "SOXX"}
    assert benchmark_for(benchmarks, "NVDA", ["group:semis"], "XNYS") == "SOXX"
    assert benchmark_for(benchmarks, "TSLA", [], "XNYS") == "SPY"
    assert benchmark_for(benchmarks, "SPY", [], "XNYS") is None
    assert benchmark_for(benchmarks, "BTC-USD", [], "24/7") is None


def minutes(prices: list[float], start: int = START) -> list[TickPoint]:
    return [TickPoint(start + i * 60_000, p) for i, p in enumerate(prices)]


def market_with(prices: list[float]) -> Market:
    track = Track()
    track.add([(t.ts, t.price) for t in minutes(prices)], horizon_ms=86_400_000)
    return Market("SPY", track)


def test_an_alert_says_the_markets_move_over_the_same_span_and_its_own():
    spy = [400.0] * 10 + [392.0, 388.0, 388.0]  # -3 % over the last two minutes
    ticks = minutes([100.0] * 10 + [96.0, 93.0, 93.0])  # -7 %
    out = advance(SymbolState(), "NVDA", ticks, [DROP], lateness_ms=0, now=NOW, market=market_with(spy))
    (alert,) = out.anomalies
    assert alert.benchmark == "SPY" and alert.beta == 1.0  # no history: β 1
    # Independently: the reference is the window's high (100 at minute 9), the crossing tick minute 11
    market = (spy[11] / spy[9] - 1) * 100
    assert alert.market_change_pct == pytest.approx(market, abs=1e-3)
    assert alert.own_change_pct == pytest.approx(alert.change_pct - market, abs=1e-3)
    bare = advance(SymbolState(), "NVDA", ticks, [DROP], lateness_ms=0, now=NOW)
    assert bare.anomalies[0].market_change_pct is None and bare.anomalies[0].benchmark is None


def test_the_relative_rule_fires_on_an_own_move_whatever_the_market_did():
    spy = [400.0] * 10 + [380.0] * 5  # the market falls 5 %
    followed = minutes([100.0] * 10 + [95.2] * 5)  # -4.8 %: followed, own +0.2 %
    alone = minutes([100.0] * 10 + [96.5] * 5)  # -3.5 % while the market fell 5: own +1.5 %
    against = minutes([100.0] * 10 + [104.0] * 5)  # +4 % against a -5 % market: own +9 %
    market = market_with(spy)

    def fired(ticks: list[TickPoint]) -> list[str]:
        return advance(SymbolState(), "X", ticks, [RELATIVE], lateness_ms=0, now=NOW, market=market).new_ids

    assert fired(followed) == [] and fired(alone) == []
    (found,) = advance(SymbolState(), "X", against, [RELATIVE], lateness_ms=0, now=NOW, market=market).anomalies
    assert found.rule == "relative" and found.own_change_pct == pytest.approx(9.0, abs=0.01)
    # Without a benchmark the rule never holds
    assert advance(SymbolState(), "X", against, [RELATIVE], lateness_ms=0, now=NOW).new_ids == []


def test_beta_learns_from_ticks_leaving_the_window_in_any_batching():
    rng = random.Random(3)
    spy, own = [400.0], [100.0]
    for _ in range(240):
        step = rng.gauss(0, 0.003)
        spy.append(spy[-1] * math.exp(step))
        own.append(own[-1] * math.exp(2 * step + rng.gauss(0, 0.0005)))
    market, ticks = market_with(spy), minutes(own)
    betas = []
    for size in (7, 240):
        state = SymbolState()
        for i in range(0, len(ticks), size):
            advance(state, "X", ticks[i : i + size], [DROP], lateness_ms=0, now=NOW, market=market)
        betas.append(state.beta.value)
    assert betas[0] == betas[1] and betas[0] == pytest.approx(2.0, abs=0.1)


def test_a_preview_of_the_relative_rule_replays_against_the_benchmark():
    spy = [400.0] * 10 + [380.0] * 5
    against = minutes([100.0] * 10 + [104.0] * 5)
    assert count_alerts("X", RELATIVE, against, market=market_with(spy)) == (1, 15)
    assert count_alerts("X", RELATIVE, against) == (0, 15)  # no benchmark: the rule never holds
