"""Unit tests of pipeline.rules: each rule's arithmetic, the bad-data guards and the running figures."""

from __future__ import annotations

import math
import random

import pytest

from pipeline.detect.rules import (
    Baseline,
    Pending,
    SlidingExtremes,
    SlidingSum,
    confirmed,
    contradicts,
    price_crossed,
    skew_reason,
    volume_ratio,
    zscore,
)

T0 = 1_800_000_000_000
MINUTE = 60_000


def test_price_rules_measure_from_the_window_extreme():
    assert price_crossed("drop", 95.0, 100.0, 5) and not price_crossed("drop", 95.01, 100.0, 5)
    assert price_crossed("rise", 105.0, 100.0, 5) and not price_crossed("rise", 104.99, 100.0, 5)


def test_zscore_is_the_log_return_in_sigmas_of_a_move_that_long():
    variance = 0.001**2  # 0.1 % per sqrt(second)
    assert zscore(100 * math.exp(0.02), 100, 100, variance) == pytest.approx(2.0)  # sigma over 100 s = 1 %
    assert zscore(100 * math.exp(-0.02), 100, 400, variance) == pytest.approx(-1.0)  # twice the time, half the z
    # A symbol that never moved: the floor (1 bp per sqrt(minute)) keeps a tiny move finite.
    assert abs(zscore(100.01, 100, 60, 0.0)) == pytest.approx(1.0, rel=0.01)


def test_volume_ratio_against_the_usual_for_the_window():
    assert volume_ratio(3000, 2.0, 300) == 5.0  # 2 per second usual: 600 in 5 minutes
    assert volume_ratio(3000, 0.0, 300) is None  # nothing usual to compare with


@pytest.mark.parametrize(
    ("ts", "newest", "expected"),
    [
        (T0 + 20 * MINUTE, T0, "1200s ahead of the clock, 1200s after its newest tick"),
        (T0 + 20 * MINUTE, None, "1200s ahead of the clock, no earlier tick of the symbol"),
        (T0 + 20 * MINUTE, T0 + 20 * MINUTE - 1000, None),  # a replay faster than real time: its ticks agree
        (T0 + 59_000, T0 - 10 * MINUTE, None),  # inside the tolerance of the clock
        (T0 - 5 * MINUTE, T0 - 60 * MINUTE, None),  # a gap (a market reopening) is not ahead of the clock
    ],
)
def test_a_timestamp_is_suspect_only_ahead_of_both_the_clock_and_the_symbol(ts, newest, expected):
    reason = skew_reason(ts, newest, now_ms=T0, tolerance_ms=60_000)
    assert (reason is None) == (expected is None)
    if expected:
        assert expected in reason


@pytest.mark.parametrize(
    ("reference", "outlier", "price", "bad"),
    [
        (100, 50, 100, True),  # half the price, back on the next tick
        (100, 200, 101, True),  # twice the price, back
        (100, 50, 75, True),  # half of the move taken back
        (100, 50, 70, False),  # most of the move stays: a crash, not a print
        (100, 94.9, 95.1, False),  # hovering at the threshold is not a bad print
    ],
)
def test_a_print_is_bad_when_the_next_tick_takes_back_half_its_move(reference, outlier, price, bad):
    assert contradicts(reference, outlier, price) is bad


def test_confirmation_by_ticks_and_seconds():
    first = Pending(T0, 1, 100.0, 90.0)
    assert not confirmed(first, T0, confirm_ticks=2, confirm_seconds=0)
    assert confirmed(first._replace(ticks=2), T0 + 1000, confirm_ticks=2, confirm_seconds=0)
    assert confirmed(first, T0, confirm_ticks=1, confirm_seconds=0)  # 1 tick: alert at once
    assert confirmed(first._replace(ticks=2), T0 + 10_000, confirm_ticks=2, confirm_seconds=10)
    assert not confirmed(first._replace(ticks=9), T0 + 9_999, confirm_ticks=2, confirm_seconds=10)
    assert not confirmed(first, T0 + 60_000, confirm_ticks=2, confirm_seconds=10)  # one tick is never enough


def test_baseline_estimates_the_volatility_and_volume_of_a_random_walk():
    rng = random.Random(3)
    sigma, tau = 0.0004, 3_600_000  # per sqrt(second); one hour
    baseline, log_price = Baseline(), math.log(100)
    for k in range(4 * 3600):  # four hours of one-second ticks
        log_price += sigma * rng.gauss(0, 1)
        baseline.fold(T0 + k * 1000, math.exp(log_price), 300 + rng.uniform(-100, 100), tau)
    variance, volume = baseline.per_second(tau)
    assert math.sqrt(variance) == pytest.approx(sigma, rel=0.05)
    assert volume == pytest.approx(300, rel=0.05)
    assert Baseline.from_list(baseline.to_list()) == baseline


def test_baseline_forgets_an_old_regime():
    calm_then_wild, tau = Baseline(), 600_000
    for k in range(7200):
        calm_then_wild.fold(T0 + k * 1000, 100 * (1.01 if k % 2 and k >= 3600 else 1), 1.0, tau)
    variance, _ = calm_then_wild.per_second(tau)
    assert math.sqrt(variance) == pytest.approx(math.log(1.01), rel=0.05)  # only the last hour counts now


@pytest.mark.parametrize("seed", range(4))
def test_sliding_windows_skip_excluded_ticks(seed: int):
    rng = random.Random(seed)
    prices = [rng.uniform(90, 110) for _ in range(300)]
    volumes = [rng.choice([math.nan, rng.uniform(0, 50)]) for _ in range(300)]
    excluded: set[int] = set()
    extremes, sums = SlidingExtremes(prices, excluded), SlidingSum(volumes, excluded)
    lo = 0
    for hi in range(1, len(prices)):
        lo = min(hi, lo + rng.choice([0, 1, 1, 2, 30]))
        if rng.random() < 0.05:  # found to be a bad print when the next tick came
            excluded.add(hi - 1)
            extremes.reset()
            sums.reset()
        kept = [j for j in range(lo, hi) if j not in excluded]
        expected = (max(prices[j] for j in kept), min(prices[j] for j in kept)) if kept else None
        assert extremes(lo, hi) == expected
        assert sums(lo, hi) == pytest.approx(sum(0 if math.isnan(volumes[j]) else volumes[j] for j in kept))
        if expected:
            assert extremes.latest_at(lo, hi, expected[0]) == max(j for j in kept if prices[j] == expected[0])
