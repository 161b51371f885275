"""Mutes inside detection: what stays quiet, what breaks through (`unless 2x`), and what ends a mute by itself
(a price crossed, the episodes it waited for resolved)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.silence import Hush

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
T0 = 1_800_000_000_000
DROP4 = Rule("drop", 4.0, 300, 300)


def ticks(*prices: float, start: int = 0) -> list[TickPoint]:
    return [TickPoint(T0 + (start + i) * 1000, p) for i, p in enumerate(prices)]


# 100 flat, then down 1 % a tick to 90, then flat: -4 % at 96 (opens), -8 % at 92 (twice the threshold)
CRASH = ticks(*[100.0] * 60, *[100.0 - i for i in range(1, 11)], *[90.0] * 900)


def run(hushes: list[Hush], prices: list[TickPoint] = CRASH, rules: list[Rule] | None = None):
    state = SymbolState()
    return advance(state, "TSLA", prices, rules or [DROP4], lateness_ms=0, now=NOW, silence=hushes), state


def test_a_move_reaching_the_unless_multiple_breaks_through_and_says_whose_mute():
    out, _ = run([Hush("TSLA", 1.0, "muted by alice: earnings", unless=2.0)])
    (anomaly,) = out.anomalies
    assert out.new_ids == [anomaly.id] and not anomaly.muted
    assert anomaly.broke_through == "muted by alice: earnings"


def test_a_move_short_of_the_multiple_stays_muted():
    out, _ = run([Hush("TSLA", 1.0, "muted by alice", unless=3.0)])
    (anomaly,) = out.anomalies
    assert anomaly.muted and anomaly.broke_through is None


def test_breaking_through_needs_every_mute_in_force_to_allow_it():
    out, _ = run([Hush("TSLA", 1.0, "a", unless=2.0), Hush("group:cars", 2.0, "b")])
    assert out.anomalies[0].muted


def test_a_muted_episode_that_later_breaks_through_is_reported_new_once():
    state = SymbolState()
    hush = [Hush("TSLA", 1.0, "muted by bob", unless=2.0)]
    opened = advance(state, "TSLA", CRASH[:65], [DROP4], lateness_ms=0, now=NOW, silence=hush)  # at -4 %: muted
    broke = advance(state, "TSLA", CRASH[65:80], [DROP4], lateness_ms=0, now=NOW, silence=hush)
    again = advance(state, "TSLA", CRASH[80:90], [DROP4], lateness_ms=0, now=NOW, silence=hush)
    assert opened.anomalies[0].muted and opened.new_ids == [opened.anomalies[0].id]
    assert broke.new_ids == [opened.anomalies[0].id] and not broke.anomalies[0].muted
    assert again.new_ids == []


def test_a_price_condition_ends_the_mute_on_the_crossing_tick():
    hush = Hush("TSLA", 1.0, "muted by carol", below=96.5)
    out, _ = run([hush])
    assert out.lifted == [hush]
    assert not out.anomalies[0].muted  # the drop opened at 96, after the mute ended at 96


def test_a_price_not_reached_keeps_the_mute():
    out, _ = run([Hush("TSLA", 1.0, "muted by carol", above=120.0)])
    assert out.lifted == [] and out.anomalies[0].muted


def test_until_resolved_ends_when_its_episode_resolves_and_not_before():
    state = SymbolState()
    opened = advance(state, "TSLA", CRASH[:80], [DROP4], lateness_ms=0, now=NOW)
    hush = Hush("TSLA", 1.0, "muted by dan", episodes=frozenset(opened.new_ids))
    during = advance(state, "TSLA", CRASH[80:100], [DROP4], lateness_ms=0, now=NOW, silence=[hush])
    after = advance(state, "TSLA", CRASH[100:], [DROP4], lateness_ms=0, now=NOW, silence=[hush])
    assert during.lifted == []
    assert after.resolved_ids == opened.new_ids and after.lifted == [hush]
    assert not after.anomalies[0].muted  # it opened before the mute: its resolution is still told
