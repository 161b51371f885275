"""Operator controls kept in Redis: muted symbols and per-symbol rule overrides, every change audited.

Workers read them once per batch (`controls_for`), in one round trip (two hashes, so the cost does not grow
with the number of keys). Front-ends (the Slack bot, the API, the CLI) change them only through `Controls`,
which validates once for all of them and appends each change (who, when, old -> new, via which front-end)
to the audit index in Elasticsearch. Defaults come from settings, so an empty Redis means "the documented
defaults for every symbol".
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict, Unpack, cast

import orjson
from elasticsearch import Elasticsearch
from redis import Redis

from pipeline import keys, store
from pipeline.detect.detection import Rule
from pipeline.detect.rules import MAX_CONFIRM_SECONDS, MAX_CONFIRM_TICKS, MAX_WINDOW_SECONDS, threshold_problem
from pipeline.durations import format_duration, parse_duration, parse_seconds
from pipeline.schema import RuleName, iso, normalise_symbol
from pipeline.settings import Settings

RULES: tuple[RuleName, ...] = ("drop", "rise", "zscore", "volume")
# (and "confirm_ticks" / "confirm_seconds" when they differ from the settings)
MAX_MUTE = timedelta(days=90)
DEFAULT_MUTE = timedelta(hours=1)  # a mute given no length, in Slack, the CLI and the API alike: none is forgotten
FOREVER = "forever"  # the word for a mute with no end (until someone unmutes)
MAX_REASON_CHARS = 500


def mute_length(text: str | None) -> timedelta | None:
    """A mute's length as a person gives it: nothing -> DEFAULT_MUTE, `forever` -> None (until unmuted), else a
    duration such as 30m, 2h, 1d (ValueError for anything else)."""
    if text is None or not text.strip():
        return DEFAULT_MUTE
    if text.strip().lower() == FOREVER:
        return None
    return parse_duration(text)


class RuleChange(TypedDict, total=False):
    """Parameters of a rule to change (what the bot, the API and the CLI parse); those left out stay."""

    threshold_pct: float
    window_seconds: int
    cooldown_seconds: int
    confirm_ticks: int
    confirm_seconds: float


@dataclass(frozen=True)
class SymbolControls:
    rules: list[Rule]
    muted: bool


def default_rules(settings: Settings) -> dict[RuleName, Rule]:
    thresholds: dict[RuleName, float] = {
        "drop": settings.drop_pct,
        "rise": settings.rise_pct,
        "zscore": settings.zscore_k,
        "volume": settings.volume_spike_x,
    }
    return {
        name: Rule(
            name,
            threshold,
            settings.window_seconds,
            settings.effective_cooldown_seconds,
            settings.confirm_ticks,
            settings.confirm_seconds,
        )
        for name, threshold in thresholds.items()
    }


def controls_for(redis: Redis, settings: Settings, symbols: list[str]) -> dict[str, SymbolControls]:
    """Rules and mute flags for many symbols in one round trip (called once per batch)."""
    if not symbols:
        return {}
    defaults = default_rules(settings)
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(keys.MUTES, symbols)
    pipe.hmget(keys.RULES, [f"{symbol}:{rule}" for symbol in symbols for rule in RULES])
    mutes, overrides = pipe.execute()
    now = time.time()
    result = {}
    for i, symbol in enumerate(symbols):
        rules = [_apply(defaults[rule], overrides[i * len(RULES) + j]) for j, rule in enumerate(RULES)]
        result[symbol] = SymbolControls(rules, _active(mutes[i], now) is not None)
    return result


def muted_now(redis: Redis) -> set[str]:
    """The symbols muted right now."""
    now = time.time()
    return {keys.text(key) for key, raw in redis.hgetall(keys.MUTES).items() if _active(raw, now) is not None}


def _active(raw: bytes | str | None, now: float) -> dict[str, Any] | None:
    """The stored mute if it is still in force."""
    if raw is None:
        return None
    mute = orjson.loads(raw)
    until = mute.get("until")
    return mute if until is None or until > now else None


def _apply(rule: Rule, raw: bytes | str | None) -> Rule:
    if raw is None:
        return rule
    values = orjson.loads(raw)
    return replace(
        rule,
        threshold_pct=float(values.get("threshold_pct", rule.threshold_pct)),
        window_seconds=int(values.get("window_seconds", rule.window_seconds)),
        cooldown_seconds=int(values.get("cooldown_seconds", rule.cooldown_seconds)),
        confirm_ticks=int(values.get("confirm_ticks", rule.confirm_ticks)),
        confirm_seconds=float(values.get("confirm_seconds", rule.confirm_seconds)),
    )


# --- the front-ends' service ----------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who made a change, and through which front-end (`id`: e.g. a Slack user id)."""

    name: str
    via: Literal["slack", "api", "cli"]
    id: str | None = None


@dataclass(frozen=True)
class Mute:
    symbol: str
    until: datetime | None  # None: until unmuted
    by: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class RuleView:
    """A rule as it applies to one symbol now; `overridden` when it differs from the defaults by choice."""

    name: RuleName
    threshold_pct: float
    window_seconds: int
    cooldown_seconds: int
    overridden: bool
    confirm_ticks: int = 1  # the condition must hold on this many ticks in a row ...
    confirm_seconds: float = 0.0  # ... and for this long before the rule alerts

    @property
    def enabled(self) -> bool:
        return self.threshold_pct > 0

    def as_rule(self) -> Rule:
        """What detection runs (e.g. a preview replays it)."""
        return Rule(
            self.name,
            self.threshold_pct,
            self.window_seconds,
            self.cooldown_seconds,
            self.confirm_ticks,
            self.confirm_seconds,
        )

    def describe(self) -> str:
        return describe_rule(self.name, self.threshold_pct, self.window_seconds)

    def describe_fully(self) -> str:
        """Every field, as people say it (see `describe_rule_fully`)."""
        return describe_rule_fully(_rule_state(self))


@dataclass(frozen=True)
class Change:
    """One audited change: what it did, to which symbol, the state before and after, who and when."""

    action: str  # set_rule, reset_rule, mute, unmute
    symbol: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor: Actor
    at: datetime

    def summary(self) -> str:
        """One line for people: `drop 5% in 5m → drop 3% in 10m`, `muted until 2026-11-24 18:00 UTC: earnings`."""
        if self.action in ("set_rule", "reset_rule"):
            return f"{_describe_rule(self.old)} → {_describe_rule(self.new)}"
        if self.action == "mute" and self.new:
            until = self.new["until"]
            ends = f"until {until[:16].replace('T', ' ')} UTC" if until else "until unmuted"
            return f"muted {ends}" + (f": {self.new['reason']}" if self.new.get("reason") else "")
        return "unmuted"

    def document(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "action": self.action,
            "symbol": self.symbol,
            "old": self.old,
            "new": self.new,
            "actor": asdict(self.actor),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Change:
        return cls(
            doc["action"],
            doc["symbol"],
            doc.get("old"),
            doc.get("new"),
            Actor(**doc["actor"]),
            datetime.fromisoformat(doc["at"]),
        )


class Controls:
    """Mutes and per-symbol rules for the bot, the API and the CLI: validated, written to Redis, audited.

    Every method raises ValueError with a message a user can act on when the input is wrong. The audit
    record is written first: if Elasticsearch cannot take it, nothing changes.
    """

    def __init__(self, redis: Redis, settings: Settings, es: Elasticsearch, indices: store.Indices) -> None:
        self.redis = redis
        self.settings = settings
        self.es = es
        self.indices = indices

    # --- rules ------------------------------------------------------------------------------------

    def rules(self, symbol: str) -> dict[RuleName, RuleView]:
        symbol = normalise_symbol(symbol)
        raw = self.redis.hmget(keys.RULES, [f"{symbol}:{rule}" for rule in RULES])
        defaults = default_rules(self.settings)
        views = {}
        for name, override in zip(RULES, raw, strict=True):
            rule = _apply(defaults[name], override)
            views[name] = RuleView(
                name,
                rule.threshold_pct,
                rule.window_seconds,
                max(rule.cooldown_seconds, rule.window_seconds),
                overridden=rule != defaults[name],
                confirm_ticks=rule.confirm_ticks,
                confirm_seconds=rule.confirm_seconds,
            )
        return views

    def candidate(self, symbol: str, rule: RuleName, **change: Unpack[RuleChange]) -> RuleView:
        """The rule `set_rule` would store for these changes, validated, without storing it (for previews).

        Parameters not given keep their current values; a cooldown that followed the window keeps following it.
        """
        _check_rule_name(rule)
        old = self.rules(symbol)[rule]
        window = int(change.get("window_seconds", old.window_seconds))
        if "cooldown_seconds" in change:
            cooldown = int(change["cooldown_seconds"])
        elif old.cooldown_seconds == old.window_seconds:
            cooldown = window
        else:
            cooldown = max(old.cooldown_seconds, window)
        threshold = float(change.get("threshold_pct", old.threshold_pct))
        new = RuleView(
            rule,
            threshold,
            window,
            cooldown,
            overridden=True,
            confirm_ticks=int(change.get("confirm_ticks", old.confirm_ticks)),
            confirm_seconds=float(change.get("confirm_seconds", old.confirm_seconds)),
        )
        _validate(new)
        return new

    def set_rule(self, symbol: str, rule: RuleName, actor: Actor, **change: Unpack[RuleChange]) -> Change:
        """Override some of a rule's parameters for one symbol; the others keep their current values."""
        symbol = normalise_symbol(symbol)
        new = self.candidate(symbol, rule, **change)
        old = self.rules(symbol)[rule]
        audited = self._record("set_rule", symbol, _rule_state(old), _rule_state(new), actor)
        stored: dict[str, Any] = {
            "threshold_pct": new.threshold_pct,
            "window_seconds": new.window_seconds,
            "cooldown_seconds": new.cooldown_seconds,
        }
        default = default_rules(self.settings)[rule]
        if (new.confirm_ticks, new.confirm_seconds) != (default.confirm_ticks, default.confirm_seconds):
            stored.update(confirm_ticks=new.confirm_ticks, confirm_seconds=new.confirm_seconds)  # else: settings'
        self.redis.hset(keys.RULES, f"{symbol}:{rule}", orjson.dumps(stored))
        return audited

    def reset_rule(self, symbol: str, rule: RuleName, actor: Actor) -> Change:
        """Back to the defaults from settings."""
        symbol = normalise_symbol(symbol)
        _check_rule_name(rule)
        old = self.rules(symbol)[rule]
        default = default_rules(self.settings)[rule]
        new = RuleView(
            rule,
            default.threshold_pct,
            default.window_seconds,
            default.cooldown_seconds,
            False,
            default.confirm_ticks,
            default.confirm_seconds,
        )
        change = self._record("reset_rule", symbol, _rule_state(old), _rule_state(new), actor)
        self.redis.hdel(keys.RULES, f"{symbol}:{rule}")
        return change

    # --- mutes ------------------------------------------------------------------------------------

    def mute(
        self,
        symbol: str,
        actor: Actor,
        *,
        duration: timedelta | None = None,
        until: datetime | None = None,
        reason: str = "",
    ) -> Change:
        """Silence a symbol's notifications (its anomalies are still stored, flagged muted).

        `duration` or `until` bound it; neither means until someone unmutes.
        """
        symbol = normalise_symbol(symbol)
        now = datetime.now(UTC)
        if duration is not None and until is not None:
            raise ValueError("give a duration or an end time, not both")
        if duration is not None:
            if duration <= timedelta(0):
                raise ValueError("a mute lasts longer than zero, e.g. 30m, 2h, 1d")
            until = now + duration
        if until is not None:
            until = until.astimezone(UTC)
            if until <= now:
                raise ValueError("a mute must end in the future")
            if until - now > MAX_MUTE:
                raise ValueError(
                    f"a mute can last at most {format_duration(MAX_MUTE.total_seconds())}; "
                    "leave the duration out to mute until unmuted"
                )
        reason = reason.strip()
        if len(reason) > MAX_REASON_CHARS:
            raise ValueError(f"the reason can be at most {MAX_REASON_CHARS} characters")
        old = self.mute_of(symbol)
        new = Mute(symbol, until, actor.name, reason, now)
        change = self._record("mute", symbol, _mute_state(old), _mute_state(new), actor)
        self.redis.hset(
            keys.MUTES,
            symbol,
            orjson.dumps(
                {
                    "until": until.timestamp() if until else None,
                    "by": actor.name,
                    "reason": reason,
                    "at": now.timestamp(),
                }
            ),
        )
        return change

    def unmute(self, symbol: str, actor: Actor) -> Change | None:
        """None when the symbol was not muted (nothing to record)."""
        symbol = normalise_symbol(symbol)
        old = self.mute_of(symbol)
        if old is None:
            self.redis.hdel(keys.MUTES, symbol)  # an expired entry, if any
            return None
        change = self._record("unmute", symbol, _mute_state(old), None, actor)
        self.redis.hdel(keys.MUTES, symbol)
        return change

    def mute_of(self, symbol: str) -> Mute | None:
        symbol = normalise_symbol(symbol)
        mute = _active(self.redis.hget(keys.MUTES, symbol), time.time())
        return None if mute is None else _mute(symbol, mute)

    def mutes(self) -> list[Mute]:
        """Mutes in force, soonest to end first (open-ended ones last)."""
        now = time.time()
        found = [
            _mute(keys.text(key), mute)
            for key, raw in self.redis.hgetall(keys.MUTES).items()
            if (mute := _active(raw, now)) is not None
        ]
        return sorted(found, key=lambda m: (m.until is None, m.until or datetime.max.replace(tzinfo=UTC), m.symbol))

    # --- audit ------------------------------------------------------------------------------------

    def audit_log(self, *, symbol: str | None = None, limit: int = 50) -> list[Change]:
        """The newest changes first (all symbols, or one)."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        query = {"term": {"symbol": normalise_symbol(symbol)}} if symbol else {"match_all": {}}
        hits = self.es.search(index=self.indices.audit, query=query, size=limit, sort=[{"at": "desc"}])["hits"]["hits"]
        return [Change.from_document(hit["_source"]) for hit in hits]

    def _record(
        self, action: str, symbol: str, old: dict[str, Any] | None, new: dict[str, Any] | None, actor: Actor
    ) -> Change:
        change = Change(action, symbol, old, new, actor, datetime.now(UTC))
        # Refreshed on write (changes are few, made by people), so reads list it at once and never refresh.
        self.es.index(index=self.indices.audit, document=change.document(), refresh=True)
        return change


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
        _check_rule_name(rule)
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
    _check_rule_name(rule)
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


def _check_rule_name(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")


def _validate(rule: RuleView) -> None:
    if problem := threshold_problem(rule.name, rule.threshold_pct):
        raise ValueError(problem)
    if not 0 < rule.window_seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(f"a window is longer than zero and at most {format_duration(MAX_WINDOW_SECONDS)}")
    if rule.cooldown_seconds < rule.window_seconds:
        raise ValueError(
            "the cooldown must be at least the window (an episode ends only after its reference has left the window)"
        )
    if not 1 <= rule.confirm_ticks <= MAX_CONFIRM_TICKS:
        raise ValueError(f"confirm takes 1 (alert at once) to {MAX_CONFIRM_TICKS} ticks, e.g. confirm 2")
    if not 0 <= rule.confirm_seconds <= MAX_CONFIRM_SECONDS:
        raise ValueError(
            f"confirm takes a duration of at most {format_duration(MAX_CONFIRM_SECONDS)}, e.g. confirm 10s"
        )


def _rule_state(rule: RuleView) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "threshold_pct": rule.threshold_pct,
        "window_seconds": rule.window_seconds,
        "cooldown_seconds": rule.cooldown_seconds,
        "confirm_ticks": rule.confirm_ticks,
        "confirm_seconds": rule.confirm_seconds,
    }


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


def _describe_rule(state: dict[str, Any] | None) -> str:
    return "-" if state is None else describe_rule_fully(state)


def _mute(symbol: str, stored: dict[str, Any]) -> Mute:
    until, at = stored.get("until"), stored.get("at")
    return Mute(
        symbol,
        datetime.fromtimestamp(until, UTC) if until else None,
        stored.get("by", ""),
        stored.get("reason", ""),
        datetime.fromtimestamp(at, UTC) if at else None,
    )


def _mute_state(mute: Mute | None) -> dict[str, Any] | None:
    if mute is None:
        return None
    return {"until": iso(mute.until) if mute.until else None, "by": mute.by, "reason": mute.reason}
