"""Operator controls kept in Redis: muted symbols and per-symbol rule overrides.

The Slack bot and the API change these; workers read them once per batch, in one round trip (two hashes,
so the cost does not grow with the number of keys). Defaults come from settings, so an empty Redis means
"the documented defaults for every symbol".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import orjson
from redis import Redis

from pipeline.detection import Rule
from pipeline.schema import RuleName, normalise_symbol
from pipeline.settings import Settings

RULES: tuple[RuleName, ...] = ("drop", "rise")
MUTES_KEY = "tickwatch:mutes"  # symbol -> {"until": epoch seconds or null, "by": who}
RULES_KEY = "tickwatch:rules"  # "SYMBOL:rule" -> {"threshold_pct": …, "window_seconds": …, "cooldown_seconds": …}
_OVERRIDE_FIELDS = {"threshold_pct", "window_seconds", "cooldown_seconds"}


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
    if not symbols:
        return {}
    defaults = default_rules(settings)
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(MUTES_KEY, symbols)
    pipe.hmget(RULES_KEY, [f"{symbol}:{rule}" for symbol in symbols for rule in RULES])
    mutes, overrides = pipe.execute()
    now = time.time()
    result = {}
    for i, symbol in enumerate(symbols):
        rules = [_apply(defaults[rule], overrides[i * len(RULES) + j]) for j, rule in enumerate(RULES)]
        result[symbol] = SymbolControls(rules, _muted(mutes[i], now))
    return result


def _muted(raw: bytes | None, now: float) -> bool:
    if raw is None:
        return False
    until = orjson.loads(raw).get("until")
    return until is None or until > now


def _apply(rule: Rule, raw: bytes | None) -> Rule:
    if raw is None:
        return rule
    values = orjson.loads(raw)
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
    if override.get("cooldown_seconds", math.inf) < override.get("window_seconds", 0):
        raise ValueError("cooldown_seconds must be at least window_seconds")
    key = f"{normalise_symbol(symbol)}:{rule}"
    current = redis.hget(RULES_KEY, key)
    redis.hset(RULES_KEY, key, orjson.dumps({**(orjson.loads(current) if current else {}), **override}))


def clear_rule(redis: Redis, symbol: str, rule: RuleName) -> None:
    redis.hdel(RULES_KEY, f"{normalise_symbol(symbol)}:{rule}")


def mute(redis: Redis, symbol: str, *, seconds: int | None = None, by: str = "") -> None:
    """Mute a symbol's notifications (anomalies are still stored, flagged muted), optionally for a while."""
    until = time.time() + seconds if seconds else None
    redis.hset(MUTES_KEY, normalise_symbol(symbol), orjson.dumps({"until": until, "by": by}))


def unmute(redis: Redis, symbol: str) -> None:
    redis.hdel(MUTES_KEY, normalise_symbol(symbol))
