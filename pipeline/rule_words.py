"""The one grammar of rules, as people write and read them: `drop 3% 10m`, `zscore 4`, `volume 5x 15m confirm 3`.

The Slack bot, the CLI and (field by field) the API parse with it, and every front-end and the audit describe
rules with it, so a rule reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, cast

from pipeline.durations import format_duration, parse_seconds
from pipeline.schema import RULES, RuleName


class RuleChange(TypedDict, total=False):
    """Parameters of a rule to change (what the bot, the API and the CLI parse); those left out stay."""

    threshold_pct: float
    window_seconds: int
    cooldown_seconds: int
    confirm_ticks: int
    confirm_seconds: float


RULE_USAGE = (
    "RULE THRESHOLD [WINDOW] [cooldown DURATION] [confirm TICKS|DURATION], e.g. `drop 3% 10m`, "
    "`rise 8%`, `zscore 4`, `volume 5x 15m`, `drop 5% confirm 3`, `drop off`"
)
# How each rule's threshold is written: a percentage, k (sigmas), a multiple of the usual volume.
THRESHOLD_UNITS: dict[RuleName, tuple[str, ...]] = {
    "drop": ("%",),
    "rise": ("%",),
    "zscore": ("sigma", "\u03c3", "sd"),
    "volume": ("x",),
    "gap": ("%",),
    "relative": ("%",),
}


def format_threshold(rule: RuleName, threshold: float) -> str:
    """`5%`, `4 sigma`, `5x`: a threshold as people write it for that rule."""
    if rule == "zscore":
        return f"{threshold:g} sigma"
    return f"{threshold:g}{THRESHOLD_UNITS[rule][0]}"


@dataclass(frozen=True)
class RuleWords:
    """What a threshold command's words ask for: a rule and its change, or putting it back to the default."""

    rule: RuleName
    change: RuleChange
    reset: bool = False


def parse_rule_words(words: Sequence[str]) -> RuleWords:
    """The one grammar of a rule change, for the slash command, the CLI and (field by field) the API:
    `drop 3% 10m`, `rise off`, `volume 5x … cooldown 15m … confirm 3`, or `drop reset` (back to the default)."""
    if len(words) == 2 and words[1].strip().lower() == "reset":
        rule = words[0].strip().lower()
        check_rule_name(rule)
        return RuleWords(cast(RuleName, rule), RuleChange(), reset=True)
    rule, change = parse_rule_args(words)
    return RuleWords(rule, change)


def parse_rule_args(words: Sequence[str]) -> tuple[RuleName, RuleChange]:
    """`drop 3% 10m` -> ("drop", {"threshold_pct": 3.0, "window_seconds": 600}), as the bot and CLI take them.

    `off` (or 0) as the threshold turns the rule off; `cooldown 15m` sets the re-arm time; `confirm 3` the
    ticks in a row and `confirm 10s` the time the condition must hold before it alerts.
    """
    if len(words) < 2:
        raise ValueError(f"expected {RULE_USAGE}")
    rule, threshold, *rest = (word.strip().lower() for word in words)
    check_rule_name(rule)
    if threshold == "off":
        threshold_pct = 0.0
    else:
        number = threshold
        for unit in THRESHOLD_UNITS[cast(RuleName, rule)]:
            number = number.removesuffix(unit)
        try:
            threshold_pct = float(number)
        except ValueError:
            raise ValueError(f"{threshold!r} is not a threshold for {rule}; expected {RULE_USAGE}") from None
    change = RuleChange(threshold_pct=threshold_pct)
    if rest and rest[0] not in ("cooldown", "confirm"):
        change["window_seconds"] = round(parse_seconds(rest.pop(0), bare_unit="m"))
    while rest:
        if len(rest) < 2 or rest[0] not in ("cooldown", "confirm"):
            raise ValueError(f"unexpected {' '.join(rest)!r}; expected {RULE_USAGE}")
        option, value, *rest = rest
        if option == "cooldown":
            change["cooldown_seconds"] = round(parse_seconds(value, bare_unit="m"))
        elif value.isdigit():
            change["confirm_ticks"] = int(value)
        else:
            change["confirm_seconds"] = parse_seconds(value)
    return cast(RuleName, rule), change


def check_rule_name(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")


def describe_rule(rule: RuleName, threshold: float, window_seconds: int) -> str:
    """`drop 5% in 5m` / `zscore 4 sigma in 5m` / `volume 5x in 15m` / `rise off`: a rule as people say it."""
    if not threshold:
        return f"{rule} off"
    return f"{rule} {format_threshold(rule, threshold)} in {format_duration(window_seconds)}"


def describe_rule_fully(state: Mapping[str, Any]) -> str:
    """Every stored field of a rule (`_rule_state`), as people say it: `drop 5% in 5m, re-arms after 10m,
    confirmed by 2 ticks` (and `held 10s` when it must also hold that long). Shown by every front-end and in
    the audit, so a change to any field shows."""
    text = describe_rule(state["rule"], state["threshold_pct"], state["window_seconds"])
    if not state["threshold_pct"]:
        return text
    cooldown, ticks, held = state["cooldown_seconds"], state["confirm_ticks"], state["confirm_seconds"]
    text += f", re-arms after {format_duration(cooldown)}, confirmed by {ticks} tick{'s' * (ticks != 1)}"
    return text + (f" held {format_duration(held)}" if held else "")
