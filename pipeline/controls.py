"""Operator controls kept in Redis: muted symbols and per-symbol rule overrides.

The Slack bot and the API change these; workers read them once per batch. Defaults come from settings,
so an empty Redis means "the documented defaults for every symbol".
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from pipeline.detection import Rule
from pipeline.schema import RuleName, normalise_symbol
from pipeline.settings import Settings

RULES: tuple[RuleName, ...] = ("drop", "rise")
_OVERRIDE_FIELDS = {"threshold_pct", "window_seconds", "cooldown_seconds"}


def _mute_key(symbol: str) -> str:
    return f"tickwatch:mute:{symbol}"


def _rule_key(symbol: str, rule: RuleName) -> str:
    return f"tickwatch:rule:{symbol}:{rule}"


@dataclass(frozen=True)
class SymbolControls:
    rules: list[Rule]
    muted: bool


def default_rules(settings: Settings) -> dict[RuleName, Rule]:
    cooldown = settings.effective_cooldown_seconds
    return {
        "drop": Rule("drop", settings.drop_pct, settings.window_seconds, cooldown),
        "rise": Rule("rise", settings.rise_pct, settings.window_seconds, cooldown),
    }


def controls_for(redis: Redis, settings: Settings, symbols: list[str]) -> dict[str, SymbolControls]:
    """Rules and mute flags for many symbols in one round trip (called once per batch)."""
    defaults = default_rules(settings)
    pipe = redis.pipeline(transaction=False)
    for symbol in symbols:
        pipe.exists(_mute_key(symbol))
        for rule in RULES:
            pipe.hgetall(_rule_key(symbol, rule))
    replies = iter(pipe.execute())
    result = {}
    for symbol in symbols:
        muted = bool(next(replies))
        rules = [_apply(defaults[rule], next(replies)) for rule in RULES]
        result[symbol] = SymbolControls(rules, muted)
    return result


def _apply(rule: Rule, override: dict[bytes, bytes]) -> Rule:
    if not override:
        return rule
    values = {key.decode(): value.decode() for key, value in override.items()}
    return Rule(
        rule.name,
        float(values.get("threshold_pct", rule.threshold_pct)),
        int(values.get("window_seconds", rule.window_seconds)),
        int(values.get("cooldown_seconds", rule.cooldown_seconds)),
    )


def set_rule(redis: Redis, symbol: str, rule: RuleName, **override: float | int) -> None:
    """Override a rule for one symbol, e.g. set_rule(r, "TSLA", "drop", threshold_pct=3, window_seconds=600)."""
    unknown = set(override) - _OVERRIDE_FIELDS
    if unknown or rule not in RULES:
        raise ValueError(f"unknown rule {rule!r} or fields {sorted(unknown)}; rules: {RULES}, "
                         f"fields: {sorted(_OVERRIDE_FIELDS)}")
    if override.get("threshold_pct", 0) < 0 or override.get("window_seconds", 1) <= 0:
        raise ValueError("threshold_pct must be >= 0 (0 turns the rule off) and window_seconds > 0")
    redis.hset(_rule_key(normalise_symbol(symbol), rule), mapping=override)


def clear_rule(redis: Redis, symbol: str, rule: RuleName) -> None:
    redis.delete(_rule_key(normalise_symbol(symbol), rule))


def mute(redis: Redis, symbol: str, *, seconds: int | None = None, by: str = "") -> None:
    """Mute a symbol's notifications (anomalies are still stored, flagged muted), optionally for a while."""
    redis.set(_mute_key(normalise_symbol(symbol)), by or "-", ex=seconds)


def unmute(redis: Redis, symbol: str) -> None:
    redis.delete(_mute_key(normalise_symbol(symbol)))
