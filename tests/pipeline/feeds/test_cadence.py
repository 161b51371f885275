"""A symbol's usual gap is learned from live ticks only: never from replays or full-speed synthetic markets."""

from __future__ import annotations

from pipeline.feeds.cadence import MIN_SAMPLES, Feed, learn

NOW = 1_780_000_000_000


def live(start: int, gap: int, count: int) -> list[tuple[int, float, int]]:
    """Ticks made and published in real time, `gap` ms apart, ending at `start + gap * (count - 1)`."""
    return [(start + i * gap, 100.0 + i, start + i * gap + 5) for i in range(count)]


def test_real_time_ticks_teach_the_usual_gap():
    feed = learn(None, live(NOW - 10_000, 1000, 10), NOW, market_open=True)
    assert feed is not None and feed.watched and feed.samples == 9
    assert abs(feed.gap_ms - 1000) < 1 and feed.last_ms == NOW - 1000 and feed.price == 109.0


def test_history_and_full_speed_replays_teach_nothing():
    old = [(NOW - 86_400_000 + i * 1000, 100.0, NOW - 86_400_000 + i * 1000) for i in range(10)]
    assert learn(None, old, NOW, market_open=True) is None  # a day ago: not live
    burst = [(NOW - 5000 + i * 1000, 100.0, NOW - 10 + i) for i in range(10)]  # 9 s of market in 9 ms
    feed = learn(None, burst, NOW, market_open=True)
    assert feed is not None and not feed.watched and feed.gap_ms is None


def test_a_closed_market_and_one_long_pause_barely_move_the_estimate():
    feed = learn(None, live(NOW - 20_000, 1000, 10), NOW - 10_000, market_open=True)
    assert feed is not None
    closed = learn(feed, live(NOW - 9000, 5000, 2), NOW, market_open=False)
    assert closed is not None and closed.gap_ms == feed.gap_ms and closed.samples == feed.samples
    paused = learn(feed, [(NOW - 1000, 1.0, NOW - 995)], NOW, market_open=True)  # 10 s after the last tick
    assert paused is not None and 1000 < paused.gap_ms < 1200  # clamped: one pause is not the new normal


def test_a_feed_round_trips_through_its_encoding():
    feed = Feed(1, 2, 3.5, 4.0, MIN_SAMPLES)
    assert Feed.decode(feed.encode()) == feed
