"""The bot's words: Jinja2 macros in `templates/bot_*.j2`, rendered with a few formatting filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import Environment

from pipeline.alerting.messages import arrow, move, pct, price, sparkline, who
from pipeline.durations import format_duration
from pipeline.rule_words import describe_rule, describe_rule_fully, format_threshold
from pipeline.schema import Anomaly
from pipeline.templating import environment

COMMANDS = "bot_commands.j2"
ACTIONS = "bot_actions.j2"
WATCHES = "bot_watches.j2"


def render(template: str, macro: str, *args: Any, **kwargs: Any) -> str:
    """Call one macro of a bot template, e.g. render(COMMANDS, "help", "/price")."""
    return str(getattr(_module(template), macro)(*args, **kwargs)).strip()


def exported(template: str, name: str) -> Any:
    """A value a template sets at its top level, e.g. the usage lines of COMMANDS."""
    return getattr(_module(template), name)


def duration(value: float | timedelta) -> str:
    return format_duration(value.total_seconds() if isinstance(value, timedelta) else value)


def rule_text(rule: Any) -> str:
    """`drop 3% in 10m` for a Rule, a RuleView or a stored rule state (dict); `drop off` when disabled."""
    if isinstance(rule, Mapping):
        return describe_rule_fully(rule)
    return describe_rule(rule.name, rule.threshold_pct, rule.window_seconds)


def anomaly_line(anomaly: Anomaly) -> str:
    return (
        f"{arrow(anomaly)} {move(anomaly)} at {anomaly.timestamp:%H:%M} UTC "
        f"({describe_rule(anomaly.rule, anomaly.threshold_pct, anomaly.window_seconds)}) · {anomaly.status}"
    )


@lru_cache
def _environment() -> Environment:
    return environment(
        dict(
            price=price,
            pct=pct,
            dur=duration,
            spark=sparkline,
            rule_text=rule_text,
            threshold=lambda value, rule: format_threshold(rule, value),
            anomaly_line=anomaly_line,
            arrow=arrow,
            move=move,
            who=who,
            amount=lambda value: f"{value:,.0f}",
            hhmm=lambda value: f"{value:%H:%M} UTC",
            stamp=lambda value: f"{value:%Y-%m-%d %H:%M} UTC",
            iso_stamp=lambda value: f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M} UTC",
        )
    )


@lru_cache
def _module(template: str) -> Any:
    return _environment().get_template(template).module
