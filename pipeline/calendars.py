"""Which market each symbol trades on, and whether it is open: sessions, holidays and early closes from
`exchange_calendars`, never a hand-made list.

`TICKWATCH_CALENDARS` maps glob patterns to calendar codes (`{"*.L": "XLON", "BTC-*": "24/7"}`), first match
wins; a symbol no pattern matches is 24/7 when it looks like a crypto pair (`BTC-USD`, `ETH/EUR`), else XNYS.
Pure computation once a calendar is built (building one takes ~0.1 s, so each is built once per process, and
the library itself is imported only when a calendar is first needed: it brings pandas).
"""

from __future__ import annotations

import fnmatch
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from pipeline.detect.rules import Sessions

ALWAYS_OPEN = "24/7"
DEFAULT_EXCHANGE = "XNYS"


def unknown_codes(codes: Iterable[str]) -> list[str]:
    """The codes among `codes` that are neither 24/7 nor an exchange_calendars calendar."""
    wanted = {code for code in codes if code != ALWAYS_OPEN}
    if not wanted:
        return []
    import exchange_calendars

    return sorted(wanted - set(exchange_calendars.get_calendar_names()))


@cache
def _calendar(code: str) -> Any:
    import exchange_calendars

    # pandas 3 deprecation notes from inside the library: nothing a Tickwatch user could act on
    warnings.filterwarnings("ignore", message=r"(DatetimeIndex|Series)\.values returning", module="pandas")

    return exchange_calendars.get_calendar(code)


@dataclass(frozen=True)
class Session:
    """A market at one moment: open or not, since when, and when that changes (None: never, for 24/7)."""

    code: str
    open: bool
    since: datetime | None  # the session's open (open), or the last close (closed)
    until: datetime | None  # the session's close (open), or the next open (closed)

    def describe(self) -> str:
        if self.code == ALWAYS_OPEN:
            return "open 24/7"
        if self.open:
            return f"{self.code} open, closes {self.until:%a %H:%M} UTC" if self.until else f"{self.code} open"
        return f"{self.code} closed, opens {self.until:%a %d %b %H:%M} UTC" if self.until else f"{self.code} closed"


class Calendars:
    """The calendar of each symbol, and sessions by calendar (cached per minute: asked often, changes rarely)."""

    def __init__(self, patterns: Mapping[str, str]) -> None:
        self._patterns = list(patterns.items())
        self._codes: dict[str, str] = {}
        self._sessions: dict[tuple[str, int], Session] = {}

    def code_for(self, symbol: str) -> str:
        code = self._codes.get(symbol)
        if code is None:
            code = next((c for pattern, c in self._patterns if fnmatch.fnmatchcase(symbol, pattern)), None)
            code = code or (ALWAYS_OPEN if "-" in symbol or "/" in symbol else DEFAULT_EXCHANGE)
            self._codes[symbol] = code
        return code

    def session(self, code: str, at: datetime) -> Session:
        minute = int(at.timestamp()) // 60
        found = self._sessions.get((code, minute))
        if found is None:
            found = self._sessions[(code, minute)] = _session(code, at)
            if len(self._sessions) > 4096:
                self._sessions.clear()
        return found

    def session_of(self, symbol: str, at: datetime) -> Session:
        return self.session(self.code_for(symbol), at)


@dataclass(frozen=True)
class MarketDay:
    """What a calendar day was for one market: a session (perhaps closing early), a holiday, or a weekend."""

    code: str
    kind: str  # session, early close, holiday, weekend
    note: str = ""  # the holiday's name, or the early close's local time

    def describe(self) -> str:
        if self.kind == "session":
            return f"{self.code} traded a full session"
        if self.kind == "early close":
            return f"{self.code} closed early, at {self.note}"
        return f"{self.code} closed: {self.note or self.kind}"


def market_day(code: str, day: date) -> MarketDay:
    """The day `day` for the market `code` (24/7 markets always trade)."""
    if code == ALWAYS_OPEN:
        return MarketDay(code, "session")
    import pandas as pd

    calendar = _calendar(code)
    stamp = pd.Timestamp(day)
    try:
        if calendar.is_session(stamp):
            if stamp in calendar.early_closes:
                close = calendar.session_close(stamp).tz_convert(calendar.tz)
                return MarketDay(code, "early close", f"{close:%H:%M} {close.tzname()}")
            return MarketDay(code, "session")
        if day.weekday() >= 5:
            return MarketDay(code, "weekend")
        names = calendar.regular_holidays.holidays(stamp, stamp, return_name=True)
        return MarketDay(code, "holiday", str(names.iloc[0]) if len(names) else "holiday")
    except (ValueError, KeyError, IndexError):  # outside the calendar's years: nothing known, say it traded
        return MarketDay(code, "session")


@cache
def opens_ms(code: str) -> tuple[int, ...]:
    """Every session's opening time (epoch ms, sorted) of an exchange's calendar (~20 years back, 1 ahead); none
    for 24/7. Built once per process: detection bisects it per tick."""
    if code == ALWAYS_OPEN:
        return ()
    return tuple(round(t.timestamp() * 1000) for t in _calendar(code).opens)


@cache
def closes_ms(code: str) -> tuple[int, ...]:
    """Every session's closing time (epoch ms), aligned with `opens_ms`."""
    if code == ALWAYS_OPEN:
        return ()
    return tuple(round(t.timestamp() * 1000) for t in _calendar(code).closes)


def sessions_of(patterns: Mapping[str, str], symbol: str) -> Sessions:
    """The sessions detection is given for `symbol`: its calendar's under TICKWATCH_CALENDARS (`patterns`)."""
    return sessions_ms(for_patterns(patterns).code_for(symbol))


@cache
def sessions_ms(code: str) -> Sessions:
    """An exchange's sessions for detection (built once per process); none for 24/7."""
    return Sessions(opens_ms(code), closes_ms(code))


def exchanges(patterns: Mapping[str, str]) -> list[str]:
    """The exchanges symbols can trade on under TICKWATCH_CALENDARS (the default's XNYS included; not 24/7)."""
    return sorted({code for code in patterns.values() if code != ALWAYS_OPEN} | {DEFAULT_EXCHANGE})


@cache
def _for_patterns(patterns: str) -> Calendars:
    return Calendars(json.loads(patterns))


def for_patterns(patterns: Mapping[str, str]) -> Calendars:
    """This process's calendars for TICKWATCH_CALENDARS (`settings.calendars`), built once: they cache sessions."""
    return _for_patterns(json.dumps(dict(patterns), sort_keys=True))


def _session(code: str, at: datetime) -> Session:
    if code == ALWAYS_OPEN:
        return Session(code, True, None, None)
    import pandas as pd

    calendar = _calendar(code)
    minute = pd.Timestamp(at.astimezone(UTC)).floor("min")
    try:
        is_open = bool(calendar.is_open_on_minute(minute))
        if is_open:  # previous_open would skip the session that opened this very minute
            session = calendar.minute_to_session(minute)
            since, until = calendar.session_open(session), calendar.session_close(session)
        else:
            since, until = calendar.previous_close(minute), calendar.next_open(minute)
    except (ValueError, KeyError, IndexError):  # outside the calendar's years (~20 back, 1 ahead): say open
        return Session(code, True, None, None)
    return Session(code, is_open, since.to_pydatetime(), until.to_pydatetime())
