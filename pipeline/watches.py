"""Personal watchlists: a person's own rules on symbols or groups, alerted to them alone by DM.

A watch is a rule with a watcher (pipeline.detect.detection.Rule), evaluated in the workers' detection pass with
the channel's rules. Channel mutes do not silence it; the person's quiet hours hold its DMs
(pipeline.alerting.dms). Kept in Redis twice, in one MULTI: by target (the workers read a batch's symbols and
their groups, one HGETALL each) and by user (what /watches, the API and App Home list, and the limit counts).
Shared by the bot, the API and the CLI; validated here once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import time as day_time
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
from redis import Redis

from pipeline import keys
from pipeline.detect.detection import Rule
from pipeline.detect.rules import MAX_WINDOW_SECONDS, threshold_problem
from pipeline.durations import format_duration
from pipeline.groups import normalise_target
from pipeline.rule_words import describe_rule, parse_rule_args
from pipeline.schema import RuleName
from pipeline.settings import Settings

WATCH_USAGE = "SYMBOL|group:NAME RULE THRESHOLD [WINDOW], e.g. `TSLA drop 3% 10m`, `group:semis zscore 5`"
QUIET_USAGE = "quiet HH:MM-HH:MM (in your own time zone), e.g. `quiet 22:00-07:00`, or `quiet off`"
MIN_WINDOW_SECONDS = 60
_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def check_user(user: str) -> str:
    """A Slack user id (`U0123ABCD`): watches are per person, and their DMs go to that id."""
    if not _USER.fullmatch(user):
        raise ValueError(f"{user[:40]!r} is not a Slack user id (like U0123ABCD)")
    return user


@dataclass(frozen=True)
class Watch:
    """One person's rule on a symbol or a group."""

    user: str
    target: str
    rule: RuleName
    threshold_pct: float
    window_seconds: int
    at: float  # when it was set (epoch s)

    @property
    def key(self) -> str:
        return f"{self.target}|{self.rule}"

    def as_rule(self, settings: Settings) -> Rule:
        """The watch as detection runs it: the channel's confirmation, re-armed after its own window."""
        return Rule(
            self.rule,
            self.threshold_pct,
            self.window_seconds,
            self.window_seconds,
            settings.confirm_ticks,
            settings.confirm_seconds,
            watcher=self.user,
        )

    def says(self) -> str:
        """`TSLA drop 3% in 10m`."""
        return f"{self.target} {describe_rule(self.rule, self.threshold_pct, self.window_seconds)}"

    def state(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "target": self.target,
            "rule": self.rule,
            "threshold_pct": self.threshold_pct,
            "window_seconds": self.window_seconds,
            "at": self.at,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.state())

    @classmethod
    def decode(cls, raw: bytes | str) -> Watch:
        data = orjson.loads(raw)
        return cls(
            data["user"],
            data["target"],
            data["rule"],
            float(data["threshold_pct"]),
            int(data["window_seconds"]),
            float(data["at"]),
        )


def new_watch(user: str, target: str, rule: str, threshold_pct: float, window_seconds: int) -> Watch:
    """A checked watch: a Slack user, a symbol or group, a rule with a threshold above 0 and a window of 1 min to
    a day (the API's fields and the words below both come here)."""
    if rule not in ("drop", "rise", "zscore", "volume", "gap", "relative"):
        raise ValueError(f"unknown rule {rule!r}; watch with drop, rise, zscore, volume, gap or relative")
    if threshold_pct <= 0:
        raise ValueError("a watch needs a threshold above 0 (to stop watching: /unwatch)")
    if problem := threshold_problem(cast(RuleName, rule), threshold_pct):
        raise ValueError(problem)
    if not MIN_WINDOW_SECONDS <= window_seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(
            f"a watch's window is from {format_duration(MIN_WINDOW_SECONDS)} to {format_duration(MAX_WINDOW_SECONDS)}"
        )
    return Watch(check_user(user), normalise_target(target), cast(RuleName, rule), threshold_pct, window_seconds, 0.0)


def parse_watch_words(user: str, words: Sequence[str], default_window: int) -> Watch:
    """`TSLA drop 3% 10m` -> a watch (the slash command's and the CLI's grammar)."""
    if len(words) < 3:
        raise ValueError(f"expected {WATCH_USAGE}")
    rule, change = parse_rule_args(words[1:])
    extra = set(change) - {"threshold_pct", "window_seconds"}
    if extra:
        raise ValueError(f"a watch takes a threshold and a window only; expected {WATCH_USAGE}")
    window = change.get("window_seconds", default_window)
    return new_watch(user, words[0], rule, change.get("threshold_pct", 0.0), window)


@dataclass(frozen=True)
class QuietHours:
    """When a person wants no DM, in their own time zone: alerts wait and come in one catch-up DM after."""

    start: day_time
    end: day_time

    def says(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def quiet_at(self, at: datetime, zone: ZoneInfo) -> bool:
        """Whether `at` falls in the quiet hours where the person lives (a span may cross midnight)."""
        local = at.astimezone(zone).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`22:00-07:00` -> quiet hours; `off` -> None."""
        text = text.strip().lower()
        if text == "off":
            return None
        start, _, end = text.partition("-")
        times = [_CLOCK.fullmatch(part.strip()) for part in (start, end)]
        if not all(times) or start.strip() == end.strip():
            raise ValueError(f"expected {QUIET_USAGE}")
        first, second = (day_time(int(m.group(1)), int(m.group(2))) for m in times if m)
        return cls(first, second)


class Watches:
    """Every person's watches and quiet hours in Redis: add, remove, list, and what the workers read."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis, self.settings = redis, settings

    def add(self, watch: Watch) -> tuple[Watch, Watch | None]:
        """Set a watch (replacing the same user's on that target and rule); returns it and the one it replaced.
        Refused past `TICKWATCH_MAX_WATCHES_PER_USER`."""
        watch = Watch(watch.user, watch.target, watch.rule, watch.threshold_pct, watch.window_seconds, time.time())
        mine = keys.watches_of(watch.user)
        with self.redis.pipeline() as pipe:
            pipe.watch(mine)  # the limit holds against two adds at once
            old = pipe.hget(mine, watch.key)
            limit = self.settings.max_watches_per_user
            if old is None and pipe.hlen(mine) >= limit:
                raise ValueError(f"you watch {limit} rules already (the most); /unwatch one first")
            pipe.multi()
            pipe.hset(mine, watch.key, watch.encode())
            pipe.hset(keys.watches_on(watch.target), f"{watch.user}|{watch.rule}", watch.encode())
            pipe.execute()
        return watch, Watch.decode(old) if old else None

    def remove(self, user: str, target: str, rule: str | None = None) -> list[Watch]:
        """Stop a user's watches on `target` (one rule, or all); returns those removed."""
        target = normalise_target(target)
        found = [w for w in self.of_user(user) if w.target == target and (rule is None or w.rule == rule)]
        if found:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hdel(keys.watches_of(user), *[w.key for w in found])
            pipe.hdel(keys.watches_on(target), *[f"{user}|{w.rule}" for w in found])
            pipe.execute()
        return found

    def of_user(self, user: str) -> list[Watch]:
        """A user's watches, by target then rule."""
        found = [Watch.decode(raw) for raw in self.redis.hvals(keys.watches_of(check_user(user)))]
        return sorted(found, key=lambda w: (w.target, w.rule))

    def for_targets(self, targets: Iterable[str]) -> dict[str, list[Watch]]:
        """The watches on each of `targets` (symbols and groups), in one round trip."""
        names = sorted(set(targets))
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for target in names:
            pipe.hvals(keys.watches_on(target))
        return {
            t: [Watch.decode(raw) for raw in found] for t, found in zip(names, pipe.execute(), strict=True) if found
        }

    def set_quiet(self, user: str, quiet: QuietHours | None) -> None:
        if quiet is None:
            self.redis.hdel(keys.QUIET_HOURS, check_user(user))
        else:
            self.redis.hset(keys.QUIET_HOURS, check_user(user), quiet.says())

    def quiet_of(self, user: str) -> QuietHours | None:
        raw = self.redis.hget(keys.QUIET_HOURS, user)
        return QuietHours.parse(keys.text(raw)) if raw else None


def rules_for(
    symbols: Sequence[str], groups: Mapping[str, Sequence[str]], watches: Mapping[str, list[Watch]], settings: Settings
) -> dict[str, list[tuple[Watch, Rule]]]:
    """Each symbol's watches as rules: a person's own watch on the symbol beats theirs on a group it is in (the
    first group by name), so each person has at most one rule of a kind per symbol."""
    found: dict[str, list[tuple[Watch, Rule]]] = {}
    for symbol in symbols:
        chosen: dict[tuple[str, str], Watch] = {}
        for target in (symbol, *groups.get(symbol, ())):
            for watch in watches.get(target, ()):
                chosen.setdefault((watch.user, watch.rule), watch)
        if chosen:
            found[symbol] = [(w, w.as_rule(settings)) for w in chosen.values()]
    return found
