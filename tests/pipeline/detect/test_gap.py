"""Sessions in detection: the gap rule at a session's first tick, and windows that never reach back across a
closed market (pure; the sessions are XNYS's, from exchange_calendars)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.calendars import sessions_ms
from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.schema import to_ms

NOW = datetime(2026, 11, 24, tzinfo=UTC)
XNYS = sessions_ms("XNYS")
FRIDAY_CLOSE = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # 16:00 New York
MONDAY_OPEN = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)  # 09:30 New York
GAP = Rule("gap", 4.0, 300, 300)
DAY_DROP = Rule("drop", 5.0, 86_400, 86_400)  # a window longer than the night


def minutes(start: datetime, prices: list[float], trusted: bool = False) -> list[TickPoint]:
    return [TickPoint(to_ms(start + timedelta(minutes=i)), p, trusted=trusted) for i, p in enumerate(prices)]


FRIDAY = minutes(FRIDAY_CLOSE - timedelta(minutes=30), [100.0] * 30)  # the last half hour, to 15:59
MONDAY = minutes(MONDAY_OPEN, [94.0, 94.5, 95.0] + [95.0] * 30)  # opens 6 % down


def run(ticks: list[TickPoint], rules: list[Rule], sessions=XNYS, batch: int = 1000):
    state, found, new = SymbolState(), {}, []
    for i in range(0, len(ticks), batch):
        out = advance(state, "TSLA", ticks[i : i + batch], rules, lateness_ms=30_000, now=NOW, sessions=sessions)
        found.update({a.id: a for a in out.anomalies})
        new += out.new_ids
    return found, new


def test_a_session_opening_past_the_threshold_alerts_once_as_a_gap():
    found, new = run(FRIDAY + MONDAY, [GAP])
    (gap,) = found.values()
    assert new == [gap.id] and gap.rule == "gap" and gap.change_pct == -6.0
    assert gap.reference_price == 100.0 and gap.reference_timestamp == FRIDAY_CLOSE - timedelta(minutes=1)
    assert gap.timestamp == MONDAY_OPEN


def test_a_small_opening_move_or_a_24_7_market_raises_no_gap():
    calm = minutes(MONDAY_OPEN, [98.0] * 10)
    assert run(FRIDAY + calm, [GAP]) == ({}, [])
    assert run(FRIDAY + MONDAY, [GAP], sessions=None) == ({}, [])  # no sessions: no opening


def test_drop_never_compares_across_a_closed_market():
    tuesday = minutes(datetime(2026, 11, 24, 20, 30, tzinfo=UTC), [100.0] * 30)
    wednesday_open = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # 17.5 hours later: inside the day-long window
    wednesday = minutes(wednesday_open, [94.0] * 10)
    assert run(tuesday + wednesday, [DAY_DROP], sessions=None)[1] != []  # without sessions the night's move is a drop
    assert run(tuesday + wednesday, [DAY_DROP]) == ({}, [])  # with them it is not
    crash = minutes(wednesday_open, [100.0] * 10 + [90.0] * 5)
    assert len(run(tuesday + crash, [DAY_DROP])[1]) == 1  # within the session it still is


def test_the_gap_survives_batching_and_a_late_tick_after_the_open():
    one = run(FRIDAY + MONDAY, [GAP])
    for batch in (1, 7, 31):
        assert run(FRIDAY + MONDAY, [GAP], batch=batch) == one
    late = FRIDAY + MONDAY[:1] + MONDAY[2:5] + MONDAY[1:2] + MONDAY[5:]  # 3 minutes late: past the lateness
    _, new = run(late, [GAP], batch=1)
    assert new == one[1]


def test_bar_replays_gap_on_the_first_bar_too():
    found, new = run(
        minutes(FRIDAY_CLOSE - timedelta(minutes=5), [100.0] * 5, trusted=True)
        + minutes(MONDAY_OPEN, [106.0, 107.0], trusted=True),
        [GAP],
    )
    assert [a.change_pct for a in found.values()] == [6.0] and len(new) == 1


def test_outside_regular_hours_a_smaller_take_back_shows_a_bad_print():
    """A -6 % print taken back by 30 % by the next one: a bad print before the open (thin, wild prints), not
    one in the session, where half of the move must be taken back."""
    rule = Rule("drop", 5.0, 300, 300, confirm_ticks=2)
    for start, flagged in ((MONDAY_OPEN - timedelta(minutes=90), True), (MONDAY_OPEN + timedelta(hours=1), False)):
        out = advance(
            SymbolState(),
            "TSLA",
            minutes(start, [100.0] * 4 + [94.0, 95.8] + [100.0] * 3),
            [rule],
            lateness_ms=0,
            now=NOW,
            sessions=XNYS,
        )
        assert [reason.startswith("isolated print") for _, reason in out.suspects] == ([True] if flagged else [])
        assert out.new_ids == []
