"""Slash-command text to typed requests: pure, so every accepted and refused input is tested alone.

Each parser returns a request, `HELP` for `help`, or raises `Usage` with a reason the user can act on
(the listener answers it with the command's usage line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from pipeline.durations import parse_window
from pipeline.groups import normalise_target
from pipeline.mutes import MuteAsk, is_duration, parse_mute_words
from pipeline.rule_words import RuleChange, parse_rule_words
from pipeline.schema import RULES, RuleName, normalise_symbol
from pipeline.watches import QuietHours

DEFAULT_PRICE_WINDOW = timedelta(hours=1)
DEFAULT_ANOMALIES_WINDOW = timedelta(days=1)


class Usage(ValueError):
    """The command text cannot be understood; the message says why."""


class _Help:
    def __repr__(self) -> str:
        return "HELP"


HELP: Final = _Help()


@dataclass(frozen=True)
class PriceRequest:
    symbol: str
    window: timedelta
    chart: bool = False


@dataclass(frozen=True)
class AnomaliesRequest:
    symbol: str | None
    window: timedelta


@dataclass(frozen=True)
class MuteRequest:
    symbol: str  # the target: a symbol or group:NAME
    ask: MuteAsk


@dataclass(frozen=True)
class GroupRequest:
    """`/group` (list them), `/group NAME` (show one), `/group NAME add|remove MEMBER…`, `/group NAME delete`."""

    name: str | None = None
    action: str = "show"  # show, add, remove, delete
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class SymbolRequest:
    """`/unmute TARGET`, and `/threshold TARGET` (show the rules); a target is a symbol or group:NAME."""

    symbol: str


@dataclass(frozen=True)
class SuggestRequest:
    """`/threshold SYMBOL suggest`: thresholds tuned by the reasons alerts were acknowledged with."""

    symbol: str


@dataclass(frozen=True)
class ThresholdRequest:
    """Set (or with `reset`, restore the default of) one rule; `preview` replays instead of saving.

    `change` holds the parameters given, as `Controls.set_rule` takes them (see `controls.parse_rule_args`).
    """

    symbol: str
    rule: RuleName
    change: RuleChange = field(default_factory=lambda: RuleChange())
    reset: bool = False
    preview: bool = False


def parse_price(text: str) -> PriceRequest | _Help:
    words, flags = _split(text, allowed=frozenset({"--chart"}))
    if words == ["help"]:
        return HELP
    if not 1 <= len(words) <= 2:
        raise Usage("give a symbol and optionally a window")
    return PriceRequest(
        _symbol(words[0]), _window(words[1]) if len(words) > 1 else DEFAULT_PRICE_WINDOW, chart="--chart" in flags
    )


def parse_anomalies(text: str) -> AnomaliesRequest | _Help:
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if len(words) > 2:
        raise Usage("give at most a symbol and a window")
    if len(words) == 1 and is_duration(words[0]):
        return AnomaliesRequest(None, _window(words[0]))
    symbol = _symbol(words[0]) if words else None
    return AnomaliesRequest(symbol, _window(words[1]) if len(words) > 1 else DEFAULT_ANOMALIES_WINDOW)


def parse_mute(text: str) -> MuteRequest | _Help:
    """`TARGET [length|forever|until-resolved|until above/below PRICE|every …] [unless Nx] [reason]`
    (pipeline.mutes.parse_mute_words)."""
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if not words:
        raise Usage("give the symbol (or group:NAME) to mute")
    target = _target(words[0])
    try:
        return MuteRequest(target, parse_mute_words(words[1:]))
    except ValueError as error:
        raise Usage(str(error)) from None


def parse_group(text: str) -> GroupRequest | _Help:
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if not words:
        return GroupRequest()
    try:
        name = normalise_target("group:" + words[0].removeprefix("group:"))[len("group:") :]
    except ValueError as error:
        raise Usage(str(error)) from None
    if len(words) == 1:
        return GroupRequest(name)
    action, members = words[1].lower(), tuple(words[2:])
    if action not in ("add", "remove", "delete"):
        raise Usage(f"{words[1]!r}: after the group's name comes add, remove or delete")
    if action == "delete" and members:
        raise Usage("delete takes no members; to drop some, use remove")
    if action != "delete" and not members:
        raise Usage(f"{action} takes symbols or patterns, e.g. NVDA AMD or *-USD")
    return GroupRequest(name, action, members)


def parse_target_only(text: str) -> SymbolRequest | _Help:
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if len(words) != 1:
        raise Usage("give one symbol or group:NAME")
    return SymbolRequest(_target(words[0]))


def parse_no_arguments(text: str) -> _Help | None:
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if words:
        raise Usage("this command takes no arguments")
    return None


def parse_threshold(text: str) -> ThresholdRequest | SuggestRequest | SymbolRequest | _Help:
    """`SYMBOL` shows the rules; `SYMBOL drop reset` restores the default; otherwise `SYMBOL` + the rule
    arguments every front-end takes (`controls.parse_rule_args`: `drop 3% 10m`, `rise off`, `… cooldown 15m`)."""
    words, flags = _split(text, allowed=frozenset({"--preview"}))
    if words == ["help"]:
        return HELP
    if not words:
        raise Usage("give a symbol or group:NAME")
    symbol, rule_words = _target(words[0]), words[1:]
    preview = "--preview" in flags
    if [w.lower() for w in rule_words] == ["suggest"]:
        if preview:
            raise Usage("a suggestion comes with its preview already; leave --preview out")
        if symbol.startswith("group:"):
            raise Usage("suggestions are per symbol: ask for a member of the group")
        return SuggestRequest(symbol)
    if not rule_words:
        if preview:
            raise Usage("--preview needs a rule and a threshold, e.g. drop 3% 10m")
        return SymbolRequest(symbol)
    try:
        asked = parse_rule_words(rule_words)
    except ValueError as error:
        raise Usage(str(error)) from None
    if asked.reset and preview:
        raise Usage("reset cannot be previewed; preview the default's values instead")
    return ThresholdRequest(symbol, asked.rule, asked.change, reset=asked.reset, preview=preview)


@dataclass(frozen=True)
class WatchRequest:
    words: list[str]  # SYMBOL|group:NAME RULE THRESHOLD [window], checked by pipeline.watches.parse_watch_words


@dataclass(frozen=True)
class QuietRequest:
    quiet: QuietHours | None  # None: off


@dataclass(frozen=True)
class UnwatchRequest:
    target: str
    rule: RuleName | None


def parse_watch(text: str) -> WatchRequest | QuietRequest | _Help:
    """`TSLA drop 3% 10m` (checked in full by the pipeline, which knows the user), or `quiet 22:00-07:00|off`."""
    words, _ = _split(text)
    if not words or words == ["help"]:
        return HELP
    if words[0].lower() == "quiet":
        try:
            return QuietRequest(QuietHours.parse(" ".join(words[1:])))
        except ValueError as error:
            raise Usage(str(error)) from None
    if len(words) < 3:
        raise Usage("give a symbol or group:NAME, a rule and a threshold, e.g. TSLA drop 3% 10m")
    _target(words[0])
    return WatchRequest(words)


def parse_unwatch(text: str) -> UnwatchRequest | _Help:
    words, _ = _split(text)
    if words == ["help"]:
        return HELP
    if not 1 <= len(words) <= 2:
        raise Usage("give a symbol or group:NAME, and a rule to stop only that one")
    rule = words[1].lower() if len(words) == 2 else None
    if rule is not None and rule not in RULES:
        raise Usage(f"unknown rule {words[1][:20]!r}; rules: {', '.join(RULES)}")
    return UnwatchRequest(_target(words[0]), rule)


def _split(text: str, allowed: frozenset[str] = frozenset()) -> tuple[list[str], set[str]]:
    words, flags = [], set()
    for word in (text or "").split():
        if word.startswith("--"):
            if word.lower() not in allowed:
                raise Usage(f"unknown option {word}" + (f"; options: {', '.join(sorted(allowed))}" if allowed else ""))
            flags.add(word.lower())
        else:
            words.append(word)
    return words, flags


def _symbol(word: str) -> str:
    try:
        return normalise_symbol(word)
    except ValueError as error:
        raise Usage(f"{word!r}: {error}") from None


def _target(word: str) -> str:
    try:
        return normalise_target(word)
    except ValueError as error:
        raise Usage(f"{word!r}: {error}") from None


def _window(word: str) -> timedelta:
    if word.isdigit():  # 5 seconds, minutes or days? Say which rather than guess
        raise Usage(f"give the window a unit: {word}m, {word}h or {word}d")
    try:
        return parse_window(word)
    except ValueError as error:
        raise Usage(str(error)) from None
