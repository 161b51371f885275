"""Operator controls kept in Redis: mutes (plain, conditional, recurring), rule overrides and symbol groups.

Workers read them once per batch (`controls_for`): the groups, the windows and the symbols' own entries in one
round trip, their groups' entries in a second only when groups exist, so the cost does not grow with the
number of keys. Front-ends (the Slack bot, the API, the CLI) change them only through `Controls`, which
validates once for all of them and audits each change (pipeline.audit) before making it. Defaults come from
settings, so an empty Redis means "the documented defaults for every symbol".

Precedence: a symbol's own rule beats its group's (the first group by name), which beats the default. A symbol
is muted when it, or any group it is in, is muted or inside a recurring window.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import orjson
from elasticsearch import Elasticsearch
from redis import Redis

from pipeline import groups as groups_
from pipeline import keys, store
from pipeline.audit import PIPELINE, Actor, Audit, Change
from pipeline.detect import state as states
from pipeline.detect.detection import Rule
from pipeline.detect.rules import MAX_CONFIRM_SECONDS, MAX_CONFIRM_TICKS, MAX_WINDOW_SECONDS, threshold_problem
from pipeline.detect.silence import Hush
from pipeline.durations import format_duration
from pipeline.groups import Group, groups_of, is_group, normalise_target
from pipeline.mutes import (
    MAX_MUTE,
    MAX_REASON_CHARS,
    Mute,
    MuteAsk,
    Recurrence,
    Window,
    active_window,
    new_window_id,
)
from pipeline.rule_words import RuleChange, check_rule_name, describe_rule, describe_rule_fully
from pipeline.schema import RULES, RuleName
from pipeline.settings import Settings

DEFAULT = "default"


@dataclass(frozen=True)
class SymbolControls:
    rules: list[Rule]
    hushes: list[Hush]  # the mutes in force over the symbol (its own, its groups', recurring windows)
    groups: list[str] = field(default_factory=list)  # its groups' targets (`group:NAME`), in precedence order

    @property
    def muted(self) -> bool:
        return bool(self.hushes)


def default_rules(settings: Settings) -> dict[RuleName, Rule]:
    thresholds: dict[RuleName, float] = {
        "drop": settings.drop_pct,
        "rise": settings.rise_pct,
        "zscore": settings.zscore_k,
        "volume": settings.volume_spike_x,
        "gap": settings.gap_pct,
        "relative": settings.relative_pct,
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


@dataclass
class _Read:
    """What one batch's controls come from, read from Redis."""

    groups: dict[str, Group]
    windows: list[Window]
    mutes: dict[str, bytes | None]  # by target
    overrides: dict[str, bytes | None]  # by "target:rule"
    memberships: dict[str, list[str]]  # symbol -> its groups' targets, in precedence order


def _read(redis: Redis, symbols: Sequence[str], *, with_rules: bool) -> _Read:
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.GROUPS)
    pipe.hgetall(keys.MUTE_WINDOWS)
    pipe.hmget(keys.MUTES, list(symbols))
    rule_keys = [f"{s}:{r}" for s in symbols for r in RULES] if with_rules else []
    if rule_keys:
        pipe.hmget(keys.RULES, rule_keys)
    raw_groups, raw_windows, own_mutes, *own_rules = pipe.execute()
    found = groups_.decode_all(raw_groups)
    memberships = {s: [groups_.PREFIX + g for g in groups_of(s, found)] for s in symbols}
    mutes = dict(zip(symbols, own_mutes, strict=True))
    overrides = dict(zip(rule_keys, own_rules[0], strict=True)) if rule_keys else {}
    targets = sorted({t for ts in memberships.values() for t in ts})
    if targets:
        pipe = redis.pipeline(transaction=False)
        pipe.hmget(keys.MUTES, targets)
        group_rule_keys = [f"{t}:{r}" for t in targets for r in RULES] if with_rules else []
        if group_rule_keys:
            pipe.hmget(keys.RULES, group_rule_keys)
        group_mutes, *group_rules = pipe.execute()
        mutes.update(zip(targets, group_mutes, strict=True))
        if group_rule_keys:
            overrides.update(zip(group_rule_keys, group_rules[0], strict=True))
    windows = [Window.decode(keys.text(k), v) for k, v in raw_windows.items()]
    return _Read(found, windows, mutes, overrides, memberships)


def _hushes(read: _Read, symbol: str, now: float) -> list[Hush]:
    targets = [symbol, *read.memberships[symbol]]
    found = [mute.hush() for t in targets if (raw := read.mutes.get(t)) and (mute := Mute.decode(t, raw)).in_force(now)]
    at = datetime.fromtimestamp(now, UTC)
    return found + [w.hush() for w in read.windows if w.target in targets and active_window(w, at)]


def controls_for(redis: Redis, settings: Settings, symbols: list[str]) -> dict[str, SymbolControls]:
    """Rules and mutes for many symbols (called once per batch)."""
    if not symbols:
        return {}
    read = _read(redis, symbols, with_rules=True)
    defaults = default_rules(settings)
    now = time.time()
    result = {}
    for symbol in symbols:
        rules = [_rule_for(defaults[r], read.overrides, [symbol, *read.memberships[symbol]])[0] for r in RULES]
        result[symbol] = SymbolControls(rules, _hushes(read, symbol, now), read.memberships[symbol])
    return result


def muted_among(redis: Redis, symbols: Sequence[str]) -> set[str]:
    """The symbols among `symbols` muted right now (by any mute: theirs, their groups', a window)."""
    if not symbols:
        return set()
    read = _read(redis, symbols, with_rules=False)
    now = time.time()
    return {s for s in symbols if _hushes(read, s, now)}


def _rule_for(default: Rule, overrides: Mapping[str, bytes | str | None], targets: Sequence[str]) -> tuple[Rule, str]:
    """The rule and where it comes from: the first of `targets` (the symbol, then its groups) that overrides it."""
    for target in targets:
        raw = overrides.get(f"{target}:{default.name}")
        if raw is not None:
            return _apply(default, raw), target
    return default, DEFAULT


def _apply(rule: Rule, raw: bytes | str) -> Rule:
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
class RuleView:
    """A rule as it applies to a target now, and where it comes from (`source`: the target itself, one of its
    groups, or `default`); `overridden` when the target itself sets it."""

    name: RuleName
    threshold_pct: float
    window_seconds: int
    cooldown_seconds: int
    overridden: bool
    confirm_ticks: int = 1  # the condition must hold on this many ticks in a row ...
    confirm_seconds: float = 0.0  # ... and for this long before the rule alerts
    source: str = DEFAULT

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


class Controls:
    """Mutes, rules and groups for the bot, the API and the CLI: validated, written to Redis, audited.

    Every method raises ValueError with a message a user can act on when the input is wrong. The audit
    record is written first: if Elasticsearch cannot take it, nothing changes.
    """

    def __init__(self, redis: Redis, settings: Settings, es: Elasticsearch, indices: store.Indices) -> None:
        self.redis = redis
        self.settings = settings
        self.audit = Audit(es, indices)

    # --- rules ------------------------------------------------------------------------------------

    def rules(self, target: str) -> dict[RuleName, RuleView]:
        """The rules that apply to a symbol (its own, else its group's, else the default) or to a group."""
        return self._views(normalise_target(target), own=True)

    def _views(self, target: str, *, own: bool) -> dict[RuleName, RuleView]:
        """The rules of `target`, from its own overrides (unless not `own`: what applies once they are gone)."""
        chain = ([target] if own else []) + ([] if is_group(target) else self._memberships(target))
        names = [f"{t}:{r}" for t in chain for r in RULES]
        overrides = dict(zip(names, self.redis.hmget(keys.RULES, names), strict=True)) if names else {}
        defaults = default_rules(self.settings)
        views = {}
        for name in RULES:
            rule, source = _rule_for(defaults[name], overrides, chain)
            views[name] = RuleView(
                name,
                rule.threshold_pct,
                rule.window_seconds,
                max(rule.cooldown_seconds, rule.window_seconds),
                overridden=source == target,
                confirm_ticks=rule.confirm_ticks,
                confirm_seconds=rule.confirm_seconds,
                source=source,
            )
        return views

    def candidate(self, target: str, rule: RuleName, **change: Unpack[RuleChange]) -> RuleView:
        """The rule `set_rule` would store for these changes, validated, without storing it (for previews).

        Parameters not given keep their current values; a cooldown that followed the window keeps following it.
        """
        check_rule_name(rule)
        target = normalise_target(target)
        old = self.rules(target)[rule]
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
            source=target,
        )
        _validate(new)
        return new

    def set_rule(self, target: str, rule: RuleName, actor: Actor, **change: Unpack[RuleChange]) -> Change:
        """Override some of a rule's parameters for a symbol or a group; the others keep their current values."""
        target = self._existing(normalise_target(target))
        new = self.candidate(target, rule, **change)
        old = self.rules(target)[rule]
        audited = self.audit.record("set_rule", target, _rule_state(old), _rule_state(new), actor)
        stored: dict[str, Any] = {
            "threshold_pct": new.threshold_pct,
            "window_seconds": new.window_seconds,
            "cooldown_seconds": new.cooldown_seconds,
        }
        default = default_rules(self.settings)[rule]
        if (new.confirm_ticks, new.confirm_seconds) != (default.confirm_ticks, default.confirm_seconds):
            stored.update(confirm_ticks=new.confirm_ticks, confirm_seconds=new.confirm_seconds)  # else: settings'
        self.redis.hset(keys.RULES, f"{target}:{rule}", orjson.dumps(stored))
        return audited

    def reset_rule(self, target: str, rule: RuleName, actor: Actor) -> Change:
        """Drop the target's own override: a symbol falls back to its group's rule or the default."""
        target = normalise_target(target)
        check_rule_name(rule)
        old = self.rules(target)[rule]
        new = self._views(target, own=False)[rule]
        change = self.audit.record("reset_rule", target, _rule_state(old), _rule_state(new), actor)
        self.redis.hdel(keys.RULES, f"{target}:{rule}")
        return change

    # --- mutes ------------------------------------------------------------------------------------

    def mute(
        self,
        target: str,
        actor: Actor,
        *,
        duration: timedelta | None = None,
        until: datetime | None = None,
        reason: str = "",
        until_resolved: bool = False,
        above: float | None = None,
        below: float | None = None,
        unless: float | None = None,
        every: Recurrence | None = None,
    ) -> Change:
        """Silence a symbol's or a group's notifications (anomalies are still stored, flagged muted).

        `duration` or `until` bound it; `until_resolved` ends it when the symbol's open episodes resolve, `above`
        / `below` when a tick crosses that price, and `every` makes it a recurring window; none of them means
        until someone unmutes. `unless` lets a move of that multiple of its rule's threshold through.
        """
        target = self._existing(normalise_target(target))
        now = datetime.now(UTC)
        reason = reason.strip()
        if len(reason) > MAX_REASON_CHARS:
            raise ValueError(f"the reason can be at most {MAX_REASON_CHARS} characters")
        kinds = [duration is not None or until is not None, until_resolved, above is not None or below is not None]
        if sum(kinds) + (every is not None) > 1 or (above is not None and below is not None):
            raise ValueError("a mute ends one way: a length or end time, until-resolved, a price, or every …")
        if every is not None:
            window = Window(new_window_id(), target, every, actor.name, reason, now, unless)
            change = self.audit.record("add_window", target, None, window.state(), actor)
            self.redis.hset(keys.MUTE_WINDOWS, window.id, window.encode())
            return change
        until = _end(now, duration, until)
        episodes = self._open_episodes(target) if until_resolved else ()
        if above is not None or below is not None:
            self._check_price(target, above, below)
        old = self.mute_of(target)
        slack_user = actor.id if actor.via == "slack" else None  # who a reminder can reach
        new = Mute(target, until, actor.name, reason, now, above, below, episodes, unless, slack_user)
        change = self.audit.record("mute", target, old.state() if old else None, new.state(), actor)
        self.redis.hset(keys.MUTES, target, new.encode())
        return change

    def mute_as(self, target: str, actor: Actor, ask: MuteAsk, *, until: datetime | None = None) -> Change:
        """`mute` as a command asked for it (pipeline.mutes.parse_mute_words, or the API's fields)."""
        return self.mute(
            target,
            actor,
            duration=ask.duration,
            until=until,
            reason=ask.reason,
            until_resolved=ask.until_resolved,
            above=ask.above,
            below=ask.below,
            unless=ask.unless,
            every=ask.every,
        )

    def unmute(self, target: str, actor: Actor) -> list[Change]:
        """End the target's mute and remove its recurring windows; nothing to record: an empty list."""
        target = normalise_target(target)
        changes = []
        old = self.mute_of(target)
        if old is not None:
            changes.append(self.audit.record("unmute", target, old.state(), None, actor))
        self.redis.hdel(keys.MUTES, target)  # an expired entry, if any
        for window in self.windows(target):
            changes.append(self.audit.record("remove_window", target, window.state(), None, actor))
            self.redis.hdel(keys.MUTE_WINDOWS, window.id)
        return changes

    def lift(self, hush: Hush, why: str) -> Change | None:
        """End a mute whose condition was met (`why`), unless it was replaced since; audited as the pipeline's."""
        current = self.mute_of(hush.target)
        if current is None or current.hush().at != hush.at:
            return None
        change = self.audit.record("unmute", hush.target, current.state(), {"ended": why}, PIPELINE)
        with self.redis.pipeline() as pipe:  # only if still that very mute
            pipe.watch(keys.MUTES)
            raw = pipe.hget(keys.MUTES, hush.target)
            if raw is not None and Mute.decode(hush.target, raw).hush().at == hush.at:
                pipe.multi()
                pipe.hdel(keys.MUTES, hush.target)
                pipe.execute()
        return change

    def mute_of(self, target: str) -> Mute | None:
        target = normalise_target(target)
        raw = self.redis.hget(keys.MUTES, target)
        mute = None if raw is None else Mute.decode(target, raw)
        return mute if mute is not None and mute.in_force(time.time()) else None

    def mutes(self) -> list[Mute]:
        """Mutes in force, soonest to end first (open-ended ones last)."""
        now = time.time()
        found = [
            mute
            for key, raw in self.redis.hgetall(keys.MUTES).items()
            if (mute := Mute.decode(keys.text(key), raw)).in_force(now)
        ]
        return sorted(found, key=lambda m: (m.until is None, m.until or datetime.max.replace(tzinfo=UTC), m.symbol))

    def windows(self, target: str | None = None) -> list[Window]:
        """Recurring windows (of one target, or all), by target."""
        found = [Window.decode(keys.text(k), v) for k, v in self.redis.hgetall(keys.MUTE_WINDOWS).items()]
        return sorted((w for w in found if target is None or w.target == target), key=lambda w: (w.target, w.id))

    def remove_window(self, window_id: str, actor: Actor) -> Change | None:
        raw = self.redis.hget(keys.MUTE_WINDOWS, window_id)
        if raw is None:
            return None
        window = Window.decode(window_id, raw)
        change = self.audit.record("remove_window", window.target, window.state(), None, actor)
        self.redis.hdel(keys.MUTE_WINDOWS, window_id)
        return change

    # --- groups -----------------------------------------------------------------------------------

    def groups(self) -> dict[str, Group]:
        return groups_.load(self.redis)

    def group(self, name: str) -> Group | None:
        name = groups_.group_name(name)
        raw = self.redis.hget(keys.GROUPS, name)
        return None if raw is None else Group.decode(name, raw)

    def change_group(self, name: str, actor: Actor, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Change:
        """Add and remove members (symbols or patterns); a group is made by its first member, and deleted with
        its mute, windows and rules when its last one goes."""
        name = groups_.group_name(name)
        old = self.group(name)
        if old is None and not add:
            raise ValueError(f"there is no group {name}; make it by adding members, e.g. /group {name} add NVDA AMD")
        new = groups_.with_members(old, name, add, remove, actor.name)
        if not new.members:
            return self.delete_group(name, actor)
        action = "group_change" if add and remove else "group_add" if add else "group_remove"
        change = self.audit.record(action, new.target, old.state() if old else None, new.state(), actor)
        self.redis.hset(keys.GROUPS, name, new.encode())
        return change

    def delete_group(self, name: str, actor: Actor) -> Change:
        name = groups_.group_name(name)
        old = self.group(name)
        if old is None:
            raise ValueError(f"there is no group {name}")
        change = self.audit.record("group_delete", old.target, old.state(), None, actor)
        windows = [w.id for w in self.windows(old.target)]
        with self.redis.pipeline() as pipe:
            pipe.hdel(keys.GROUPS, name)
            pipe.hdel(keys.MUTES, old.target)
            pipe.hdel(keys.RULES, *[f"{old.target}:{r}" for r in RULES])
            if windows:
                pipe.hdel(keys.MUTE_WINDOWS, *windows)
            pipe.execute()
        return change

    # --- audit ------------------------------------------------------------------------------------

    def audit_log(self, *, symbol: str | None = None, limit: int = 50) -> list[Change]:
        """The newest changes first (all targets, or one symbol or group)."""
        return self.audit.log(target=normalise_target(symbol) if symbol else None, limit=limit)

    # --- helpers ----------------------------------------------------------------------------------

    def _memberships(self, symbol: str) -> list[str]:
        return [groups_.PREFIX + g for g in groups_of(symbol, self.groups())]

    def _existing(self, target: str) -> str:
        if is_group(target) and self.redis.hget(keys.GROUPS, target[len(groups_.PREFIX) :]) is None:
            name = target[len(groups_.PREFIX) :]
            raise ValueError(f"there is no group {name}; make it first, e.g. /group {name} add NVDA AMD")
        return target

    def _open_episodes(self, target: str) -> tuple[str, ...]:
        if is_group(target):
            raise ValueError("until-resolved mutes one symbol's open episode; give a group a length instead")
        found = states.load_states(self.redis, [target])[target]
        episodes = tuple(sorted(ep.anomaly["id"] for ep in found.live.values() if ep.anomaly is not None))
        if not episodes:
            raise ValueError(f"{target} has no open episode to mute until it resolves; give a length, e.g. 2h")
        return episodes

    def _check_price(self, target: str, above: float | None, below: float | None) -> None:
        if is_group(target):
            raise ValueError("a price ends one symbol's mute; give a group a length instead")
        found = states.load_states(self.redis, [target])[target]
        if not found.prices:
            return
        last = found.prices[-1]
        if (above is not None and last >= above) or (below is not None and last <= below):
            side = "above" if above is not None else "below"
            raise ValueError(f"{target} is already at {last:g}, {side} {above if above is not None else below:g}")


def _end(now: datetime, duration: timedelta | None, until: datetime | None) -> datetime | None:
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
    return until


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
