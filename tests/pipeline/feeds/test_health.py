"""Which feeds are stale, at one moment: only while their market is open, grouped when many go at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.calendars import Calendars
from pipeline.feeds.cadence import Feed
from pipeline.feeds.health import Episode, Policy, judge

POLICY = Policy(stale_factor=10, stale_min_seconds=60, down_threshold=5)
FRIDAY = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # New York open
CALENDARS = Calendars({})


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def feed(last: datetime, gap_s: float = 1.0) -> Feed:
    return Feed(ms(last), ms(last), 100.0, gap_s * 1000, 10)


def run(
    now: datetime,
    feeds: dict[str, Feed],
    episodes: dict[str, Episode] | None = None,
    muted: frozenset[str] = frozenset(),
):
    return judge(now, feeds, episodes or {}, lambda s: CALENDARS.session_of(s, now), muted.__contains__, POLICY)


def test_a_feed_silent_past_its_allowance_is_stale_once_and_back_at_its_next_tick():
    silent = {"BTC-USD": feed(FRIDAY - timedelta(seconds=61))}
    verdict = run(FRIDAY, silent)
    [episode] = verdict.stale
    assert episode.symbol == "BTC-USD" and episode.calendar == "24/7" and not episode.grouped
    assert run(FRIDAY, silent, {"BTC-USD": episode}).stale == []  # noticed once
    ticking = {"BTC-USD": feed(FRIDAY + timedelta(seconds=5))}
    [recovery] = run(FRIDAY + timedelta(seconds=6), ticking, {"BTC-USD": episode}).recovered
    assert recovery.episode == episode


def test_the_allowance_is_the_larger_of_the_factor_and_the_minimum():
    slow = {"TSLA": feed(FRIDAY - timedelta(seconds=100), gap_s=30)}  # 10 x 30 s = 300 s allowed
    assert run(FRIDAY, slow).stale == []
    assert [e.symbol for e in run(FRIDAY + timedelta(seconds=201), slow).stale] == ["TSLA"]


def test_nothing_is_stale_while_its_market_is_closed():
    evening = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
    closed = {"TSLA": feed(datetime(2026, 12, 4, 21, 0, tzinfo=UTC))}
    assert run(evening, closed).stale == []
    assert run(datetime(2026, 12, 25, 16, 0, tzinfo=UTC), closed).stale == []  # a holiday


def test_silence_after_the_open_counts_from_the_open():
    monday_open = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    friday_close = {"TSLA": feed(datetime(2026, 12, 4, 20, 59, 59, tzinfo=UTC))}
    assert run(monday_open + timedelta(seconds=30), friday_close).stale == []
    assert [e.symbol for e in run(monday_open + timedelta(seconds=61), friday_close).stale] == ["TSLA"]


def test_many_symbols_of_one_calendar_at_once_are_one_outage_and_muted_ones_are_recorded_only():
    gone = FRIDAY - timedelta(minutes=5)
    feeds = {f"S{i:02d}": feed(gone) for i in range(30)} | {"BTC-USD": feed(FRIDAY), "MUTED": feed(gone)}
    verdict = run(FRIDAY, feeds, muted={"MUTED"})
    assert len(verdict.stale) == 31
    assert verdict.outages == {"XNYS": sorted(f"S{i:02d}" for i in range(30))}
    assert all(e.grouped for e in verdict.stale if e.symbol != "MUTED")
    [muted] = [e for e in verdict.stale if e.symbol == "MUTED"]
    assert muted.muted and not muted.grouped
    assert verdict.watched["XNYS"] == 31 and verdict.watched["24/7"] == 1


def test_a_symbol_never_watched_is_never_stale():
    learning = {"NEW": Feed(ms(FRIDAY - timedelta(hours=1)), 0, 1.0, None, 0)}
    assert run(FRIDAY, learning).stale == []
