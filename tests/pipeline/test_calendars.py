"""Symbols map to markets by pattern, and sessions come from exchange_calendars: holidays, weekends, early closes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline.calendars import Calendars, exchanges, market_day
from pipeline.settings import Settings


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_patterns_come_first_then_crypto_pairs_are_24_7_and_the_rest_xnys():
    calendars = Calendars({"*.L": "XLON", "SPY": "24/7"})
    assert [calendars.code_for(s) for s in ("VOD.L", "SPY", "BTC-USD", "EUR/USD", "TSLA")] == [
        "XLON",
        "24/7",
        "24/7",
        "24/7",
        "XNYS",
    ]


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        ("2026-12-04 15:00", True),  # a Friday afternoon in New York
        ("2026-12-05 15:00", False),  # Saturday
        ("2026-12-25 15:00", False),  # Christmas
        ("2026-11-27 19:00", False),  # the day after Thanksgiving closes at 13:00 New York time
        ("2026-11-27 17:30", True),
        ("2026-12-04 22:00", False),  # after the close
    ],
)
def test_xnys_sessions(moment: str, is_open: bool):
    assert Calendars({}).session_of("TSLA", at(moment)).open is is_open


def test_a_closed_market_says_when_it_opens_and_24_7_is_always_open():
    closed = Calendars({}).session_of("TSLA", at("2026-12-05 15:00"))
    assert closed.until == at("2026-12-07 14:30") and closed.since == at("2026-12-04 21:00")
    assert "opens Mon 07 Dec 14:30 UTC" in closed.describe()
    assert Calendars({}).session_of("BTC-USD", at("2026-12-25 03:00")).open


def test_an_unknown_calendar_is_refused_with_the_setting_named():
    with pytest.raises(ValueError, match="unknown calendar XNOPE"):
        Settings(calendars={"*": "XNOPE"})


def test_a_day_is_a_session_an_early_close_a_holiday_or_a_weekend():
    assert market_day("XNYS", date(2026, 11, 25)).kind == "session"
    assert market_day("XNYS", date(2026, 11, 26)).describe() == "XNYS closed: Thanksgiving"
    assert market_day("XNYS", date(2026, 11, 27)).describe() == "XNYS closed early, at 13:00 EST"
    assert market_day("XNYS", date(2026, 12, 5)).describe() == "XNYS closed: weekend"
    assert market_day("24/7", date(2026, 12, 5)).kind == "session"
    assert exchanges({"*.L": "XLON", "BTC-*": "24/7"}) == ["XLON", "XNYS"]
