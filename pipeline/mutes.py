"""What a mute is, as people say it and as Redis keeps it: a length, `forever`, `until-resolved`, a price
(`until above 250`), a recurring window (`every sun 00:00-02:00 UTC`), and `unless 2x` on any of them.

One grammar for Slack and the CLI (`parse_mute_words`); the API takes the same fields one by one. Plain mutes
live in one Redis hash by target (a symbol or `group:NAME`); recurring windows in another, by id, as an RRULE
(dateutil) plus a length, evaluated in the window's own time zone.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from dateutil.rrule import rrule, rrulestr

from pipeline.detect.silence import Hush
from pipeline.durations import format_duration, parse_duration
from pipeline.schema import iso

MAX_MUTE = timedelta(days=90)
DEFAULT_MUTE = timedelta(hours=1)  # a mute given no length, in Slack, the CLI and the API alike: none is forgotten
FOREVER = "forever"  # the word for a mute with no end (until someone unmutes)
UNTIL_RESOLVED = "until-resolved"
MAX_REASON_CHARS = 500
MAX_WINDOW = timedelta(days=7)
MAX_UNLESS = 100.0
MUTE_USAGE = (
    "TARGET [30m|2h|forever|until-resolved|until above PRICE|until below PRICE|every DAYS HH:MM-HH:MM [TZ]] "
    "[unless 2x] [reason], e.g. `TSLA 2h earnings`, `TSLA until above 250`, "
    "`group:crypto every sun 00:00-02:00 UTC maintenance`"
)
DAYS = {"mon": "MO", "tue": "TU", "wed": "WE", "thu": "TH", "fri": "FR", "sat": "SA", "sun": "SU"}
DAY_SETS = {
    "day": "",
    "daily": "",
    "weekday": "MO,TU,WE,TH,FR",
    "weekdays": "MO,TU,WE,TH,FR",
    "weekend": "SA,SU",
    "weekends": "SA,SU",
}
HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


def mute_length(text: str | None) -> timedelta | None:
    """A mute's length as a person gives it: nothing -> DEFAULT_MUTE, `forever` -> None (until unmuted), else a
    duration such as 30m, 2h, 1d (ValueError for anything else)."""
    if text is None or not text.strip():
        return DEFAULT_MUTE
    if text.strip().lower() == FOREVER:
        return None
    return parse_duration(text)


# --- recurring windows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recurrence:
    """When a maintenance window recurs: an RRULE (its occurrences counted from `anchor`) and how long each lasts,
    in a time zone (so `every sun 00:00` stays at midnight across daylight saving)."""

    rule: str
    seconds: int
    timezone: str = "UTC"
    anchor: float = 0.0  # epoch s: the midnight the rule's occurrences count from
    says: str = ""  # as the person wrote it, when they did

    def describe(self) -> str:
        return self.says or f"{self.rule} for {format_duration(self.seconds)} ({self.timezone})"

    def last_start(self, at: datetime) -> datetime | None:
        """The latest occurrence at or before `at`."""
        return self._rrule().before(at.astimezone(ZoneInfo(self.timezone)), inc=True)

    def active_until(self, at: datetime) -> datetime | None:
        """When the occurrence in force at `at` ends, or None when none is."""
        start = self.last_start(at)
        if start is None:
            return None
        end = start + timedelta(seconds=self.seconds)
        return end if at < end else None

    def next_start(self, at: datetime) -> datetime | None:
        return self._rrule().after(at.astimezone(ZoneInfo(self.timezone)))

    def _rrule(self) -> rrule:
        start = datetime.fromtimestamp(self.anchor, ZoneInfo(self.timezone))
        return _parsed(self.rule, start)


def _parsed(rule: str, start: datetime) -> rrule:
    parsed = rrulestr(rule, dtstart=start)
    assert isinstance(parsed, rrule)  # a single RRULE (checked by `recurrence`)
    return parsed


def recurrence(
    rule: str, length: timedelta, timezone: str = "UTC", says: str = "", now: datetime | None = None
) -> Recurrence:
    """A checked recurrence: an RRULE of hourly or coarser occurrences, each 1 minute to 7 days long."""
    zone = time_zone(timezone)
    check_window_length(length)
    text = rule.strip().removeprefix("RRULE:").upper()
    if "DTSTART" in text or "\n" in text:
        raise ValueError("give one RRULE without DTSTART, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=0;BYMINUTE=0")
    midnight = (now or datetime.now(UTC)).astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    anchor = midnight - timedelta(days=1)
    try:
        _parsed(text, anchor)
    except (ValueError, TypeError, AssertionError) as error:
        raise ValueError(f"not an RRULE ({error}); e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=0;BYMINUTE=0") from None
    if not re.search(r"(^|;)FREQ=(YEARLY|MONTHLY|WEEKLY|DAILY|HOURLY)(;|$)", text):
        raise ValueError("a window recurs at most hourly (FREQ=HOURLY or coarser)")
    return Recurrence(text, round(length.total_seconds()), timezone, anchor.timestamp(), says)


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; e.g. UTC, America/New_York") from None


def check_window_length(length: timedelta) -> None:
    if not timedelta(minutes=1) <= length <= MAX_WINDOW:
        raise ValueError(f"a window lasts 1 minute to {format_duration(MAX_WINDOW.total_seconds())}")


def parse_every(words: Sequence[str], now: datetime | None = None) -> tuple[Recurrence, list[str]]:
    """`sun 00:00-02:00 [UTC|Area/City] …` (after `every`) -> the recurrence and the words left (the reason).

    Days: mon … sun, comma-separated (`sat,sun`), or day, weekdays, weekend."""
    if len(words) < 2:
        raise ValueError("every takes days and hours, e.g. every sun 00:00-02:00 UTC")
    days_word, hours, *rest = words
    days = days_word.lower()
    if days in DAY_SETS:
        by_day = DAY_SETS[days]
    else:
        try:
            by_day = ",".join(DAYS[d[:3]] for d in days.split(","))
        except KeyError:
            raise ValueError(f"{days_word!r}: days are mon … sun (e.g. sat,sun), day, weekdays or weekend") from None
    found = HOURS.fullmatch(hours)
    if not found:
        raise ValueError(f"{hours!r}: hours are HH:MM-HH:MM, e.g. 00:00-02:00")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise ValueError(f"{hours!r} is not a time of day")
    minutes = (h2 * 60 + m2 - h1 * 60 - m1) % (24 * 60) or 24 * 60
    timezone = "UTC"
    if rest and (rest[0].upper() in ("UTC", "GMT") or "/" in rest[0]):
        timezone = "UTC" if rest[0].upper() in ("UTC", "GMT") else rest[0]
        rest = rest[1:]
    rule = f"FREQ={'WEEKLY;BYDAY=' + by_day if by_day else 'DAILY'};BYHOUR={h1};BYMINUTE={m1};BYSECOND=0"
    says = f"every {days} {hours} {timezone}"
    return recurrence(rule, timedelta(minutes=minutes), timezone, says, now), list(rest)


@dataclass(frozen=True)
class Window:
    """A recurring mute of a target (a symbol or `group:NAME`)."""

    id: str
    target: str
    every: Recurrence
    by: str
    reason: str = ""
    at: datetime | None = None
    unless: float | None = None

    def says(self) -> str:
        return self.every.describe() + (f" unless {self.unless:g}x" if self.unless else "")

    def hush(self) -> Hush:
        return Hush(self.target, self.at.timestamp() if self.at else 0.0, _note(self.by, self.reason), self.unless)

    def state(self) -> dict[str, Any]:
        return {"id": self.id, "says": self.says(), "by": self.by, "reason": self.reason}

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "target": self.target,
                "rule": self.every.rule,
                "seconds": self.every.seconds,
                "timezone": self.every.timezone,
                "anchor": self.every.anchor,
                "says": self.every.says,
                "by": self.by,
                "reason": self.reason,
                "at": self.at.timestamp() if self.at else None,
                "unless": self.unless,
            }
        )

    @classmethod
    def decode(cls, key: str, raw: bytes | str) -> Window:
        d = orjson.loads(raw)
        every = Recurrence(d["rule"], d["seconds"], d["timezone"], d["anchor"], d.get("says", ""))
        at = d.get("at")
        return cls(key, d["target"], every, d.get("by", ""), d.get("reason", ""), _when(at), d.get("unless"))


_VERDICTS: dict[tuple[str, bytes], tuple[datetime, datetime, bool]] = {}


def active_window(window: Window, at: datetime) -> bool:
    """Whether `at` falls inside an occurrence of the window. Each verdict is kept until the next boundary
    (the occurrence's end, or the next start), so a batch pays an RRULE walk only when one was crossed."""
    key = (window.id, window.encode())
    cached = _VERDICTS.get(key)
    if cached is not None and cached[0] <= at < cached[1]:
        return cached[2]
    ends = window.every.active_until(at)
    valid_until = ends or window.every.next_start(at) or datetime.max.replace(tzinfo=UTC)
    if len(_VERDICTS) > 10_000:
        _VERDICTS.clear()
    _VERDICTS[key] = (at, valid_until, ends is not None)
    return ends is not None


def new_window_id() -> str:
    return "win_" + secrets.token_hex(6)


# --- plain mutes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mute:
    """A mute in force on a target. It ends at `until` (None: no set time), or when its condition is met: a price
    crossed (`above` / `below`), or the `episodes` it waits for all resolved (until-resolved)."""

    symbol: str  # the target: a symbol or group:NAME
    until: datetime | None
    by: str
    reason: str
    at: datetime | None
    above: float | None = None
    below: float | None = None
    episodes: tuple[str, ...] = ()
    unless: float | None = None
    by_id: str | None = None  # the Slack user who made it (for its reminder)

    def says(self) -> str:
        """`until 2026-11-24 18:00 UTC`, `until unmuted`, `until above 250`, `until resolved (1 episode)` …"""
        if self.above is not None:
            text = f"until above {self.above:g}"
        elif self.below is not None:
            text = f"until below {self.below:g}"
        elif self.episodes:
            text = f"until resolved ({len(self.episodes)} episode{'s' * (len(self.episodes) != 1)})"
        elif self.until is not None:
            text = f"until {self.until:%Y-%m-%d %H:%M} UTC"
        else:
            text = "until unmuted"
        return text + (f" unless {self.unless:g}x" if self.unless else "")

    def hush(self) -> Hush:
        return Hush(
            self.symbol,
            self.at.timestamp() if self.at else 0.0,
            _note(self.by, self.reason),
            self.unless,
            self.above,
            self.below,
            frozenset(self.episodes),
        )

    def state(self) -> dict[str, Any]:
        """What the audit records."""
        return {
            "until": iso(self.until) if self.until else None,
            "by": self.by,
            "reason": self.reason,
            "says": self.says(),
        }

    def encode(self) -> bytes:
        stored: dict[str, Any] = {
            "until": self.until.timestamp() if self.until else None,
            "by": self.by,
            "reason": self.reason,
            "at": self.at.timestamp() if self.at else None,
        }
        extra = {"above": self.above, "below": self.below, "episodes": list(self.episodes), "unless": self.unless}
        stored.update({k: v for k, v in extra.items() if v})
        if self.by_id:
            stored["by_id"] = self.by_id
        return orjson.dumps(stored)

    @classmethod
    def decode(cls, target: str, raw: bytes | str) -> Mute:
        d = orjson.loads(raw)
        return cls(
            target,
            _when(d.get("until")),
            d.get("by", ""),
            d.get("reason", ""),
            _when(d.get("at")),
            d.get("above"),
            d.get("below"),
            tuple(d.get("episodes", ())),
            d.get("unless"),
            d.get("by_id"),
        )

    def in_force(self, now: float) -> bool:
        return self.until is None or self.until.timestamp() > now


def _when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _note(by: str, reason: str) -> str:
    return f"muted by {by or 'someone'}" + (f": {reason}" if reason else "")


# --- the grammar -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MuteAsk:
    """What a mute command asks for, once parsed (`Controls.mute` checks the rest)."""

    duration: timedelta | None = DEFAULT_MUTE  # None: no set end (forever, or until its condition)
    until_resolved: bool = False
    above: float | None = None
    below: float | None = None
    every: Recurrence | None = None
    unless: float | None = None
    reason: str = ""


def parse_mute_words(words: Sequence[str], now: datetime | None = None) -> MuteAsk:
    """The words after the target: [length | forever | until-resolved | until above/below PRICE | every …]
    [unless Nx] [reason …]. ValueError says what is wrong."""
    rest = list(words)
    ask: dict[str, Any] = {}
    head = rest[0].lower() if rest else ""
    if head == FOREVER:
        rest.pop(0)
        ask["duration"] = None
    elif head == UNTIL_RESOLVED or (head == "until" and rest[1:2] == ["resolved"]):
        del rest[: 1 if head == UNTIL_RESOLVED else 2]
        ask.update(duration=None, until_resolved=True)
    elif head == "until":
        if len(rest) < 3 or rest[1].lower() not in ("above", "below"):
            raise ValueError("until takes above or below and a price, e.g. until above 250 (or until-resolved)")
        side, price = rest[1].lower(), _price(rest[2])
        del rest[:3]
        ask.update(duration=None, **{side: price})
    elif head == "every":
        ask["every"], rest = parse_every(rest[1:], now)
        ask["duration"] = None
    elif rest and is_duration(rest[0]):
        length = parse_duration(rest.pop(0))
        if length <= timedelta(0):
            raise ValueError("a mute lasts longer than zero, e.g. 30m, 2h, 1d")
        ask["duration"] = length
    if rest and rest[0].lower() == "unless":
        if len(rest) < 2:
            raise ValueError("unless takes a multiple of the threshold, e.g. unless 2x")
        ask["unless"] = _multiple(rest[1])
        del rest[:2]
    return MuteAsk(**ask, reason=" ".join(rest))


def _price(word: str) -> float:
    try:
        price = float(word.replace(",", ""))
    except ValueError:
        raise ValueError(f"{word!r} is not a price, e.g. 250 or 0.42") from None
    if not 0 < price < 1e12:
        raise ValueError("a price is above zero")
    return price


def _multiple(word: str) -> float:
    try:
        multiple = float(word.lower().removesuffix("x"))
    except ValueError:
        raise ValueError(f"{word!r} is not a multiple, e.g. unless 2x") from None
    if not 1 < multiple <= MAX_UNLESS:
        raise ValueError(f"unless takes a multiple above 1 and at most {MAX_UNLESS:g}, e.g. unless 2x")
    return multiple


def is_duration(word: str) -> bool:
    try:
        parse_duration(word)
    except ValueError:
        return False
    return not word.isdigit()  # a bare number is more likely the start of a reason
