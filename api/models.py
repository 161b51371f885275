"""Response and request bodies of the API (pydantic), built from the plain data `pipeline` services return."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline import history
from pipeline.audit import Change
from pipeline.calendars import Session
from pipeline.controls import RuleView
from pipeline.detect.tuning import Suggestion
from pipeline.groups import Group
from pipeline.mutes import MAX_REASON_CHARS, Mute, Window
from pipeline.schema import Anomaly, RuleName
from pipeline.watches import Watch


class MarketOut(BaseModel):
    """The symbol's market now (TICKWATCH_CALENDARS, exchange_calendars)."""

    calendar: str = Field(description="exchange_calendars code, or 24/7", examples=["XNYS"])
    open: bool
    since: datetime | None = Field(description="the session's open (open), or the last close (closed); null: 24/7")
    until: datetime | None = Field(description="the session's close (open), or the next open (closed); null: 24/7")
    status: str = Field(examples=["XNYS closed, opens Mon 07 Dec 14:30 UTC"])

    @classmethod
    def of(cls, session: Session) -> MarketOut:
        return cls(
            calendar=session.code,
            open=session.open,
            since=session.since,
            until=session.until,
            status=session.describe(),
        )


class SymbolOut(BaseModel):
    symbol: str
    last_price: float
    last_timestamp: datetime
    market: MarketOut


class SymbolList(BaseModel):
    items: list[SymbolOut] = Field(description="A to Z")


class TickOut(BaseModel):
    timestamp: datetime
    price: float
    volume: float | None

    @classmethod
    def of(cls, row: history.TickRow) -> TickOut:
        return cls(timestamp=row.timestamp, price=row.price, volume=row.volume)


class TickPage(BaseModel):
    symbol: str
    start: datetime
    end: datetime
    items: list[TickOut] = Field(description="oldest first")
    next_cursor: str | None = Field(description="pass as ?cursor= (with the same start and end) for the next page")
    next: str | None = Field(description="the next page's URL path and query, ready to call")


class Ohlc(BaseModel):
    symbol: str
    interval: str
    start: datetime
    end: datetime
    bars: list[history.Bar] = Field(description="oldest first; intervals without a tick are left out")


class AnomalyOut(Anomaly):
    slack_url: str | None = Field(
        None, description="link to the alert's Slack message (needs TICKWATCH_SLACK_WORKSPACE_URL), when it was posted"
    )


class AnomalyPage(BaseModel):
    items: list[AnomalyOut] = Field(description="newest first")
    next_cursor: str | None
    next: str | None


THRESHOLD_MEANING = "drop/rise: percent; zscore: k sigmas; volume: a multiple of the usual volume; 0 turns the rule off"


class RuleOut(BaseModel):
    threshold: float = Field(description=THRESHOLD_MEANING)
    window_seconds: int
    cooldown_seconds: int
    confirm_ticks: int = Field(description="ticks in a row the condition must hold before it alerts (1: at once)")
    confirm_seconds: float = Field(description="how long the condition must hold before it alerts (0: at once)")
    overridden: bool = Field(description="true when set for this very symbol or group")
    source: str = Field(
        description="where the rule comes from: the symbol itself, one of its groups (group:NAME), or default",
        examples=["default", "group:crypto", "TSLA"],
    )
    summary: str = Field(description="the rule as people say it", examples=["drop 5% in 5m"])

    @classmethod
    def of(cls, view: RuleView) -> RuleOut:
        return cls(
            threshold=view.threshold_pct,
            window_seconds=view.window_seconds,
            cooldown_seconds=view.cooldown_seconds,
            confirm_ticks=view.confirm_ticks,
            confirm_seconds=view.confirm_seconds,
            overridden=view.overridden,
            source=view.source,
            summary=view.describe_fully(),
        )


class SuggestionOut(BaseModel):
    """What acknowledgements suggest for one rule (pipeline.detect.tuning)."""

    rule: RuleName
    current: float = Field(description="the threshold in force")
    suggested: float | None = Field(description="null: keep the current one (nothing marked too sensitive)")
    deserved: int = Field(description="alerts acknowledged as a real move, news or expected (last 30 days)")
    undeserved: int = Field(description="alerts acknowledged as too sensitive or bad data")
    alerts_suggested: int | None = Field(None, description="alerts the suggestion would have raised, last 7 days")
    alerts_current: int | None = Field(None, description="alerts the current rule would have raised, same span")

    @classmethod
    def of(cls, s: Suggestion) -> SuggestionOut:
        replay = s.preview
        return cls(
            rule=s.rule,
            current=s.current,
            suggested=s.suggested,
            deserved=s.deserved,
            undeserved=s.undeserved,
            alerts_suggested=replay.candidate.alerts if replay else None,
            alerts_current=replay.current.alerts if replay else None,
        )


class Suggestions(BaseModel):
    symbol: str
    items: list[SuggestionOut] = Field(description="rules with labelled alerts; others are left out")


class Thresholds(BaseModel):
    symbol: str
    rules: dict[RuleName, RuleOut]


class ThresholdChange(BaseModel):
    """Set one rule's parameters for a symbol; those left out keep their current values. The limits are the
    Controls service's (the bot's too); a refusal names the field."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a silent "keep as it is"

    rule: RuleName
    threshold: float | None = Field(None, description=THRESHOLD_MEANING, examples=[3])
    window: str | None = Field(
        None, description="e.g. 90s, 5m, 1h (a bare number counts in minutes, as in Slack)", examples=["10m"]
    )
    cooldown: str | None = Field(
        None,
        description="how long the condition must be clear before the rule re-arms (a bare number counts in minutes)",
        examples=["15m"],
    )
    confirm_ticks: int | None = Field(
        None, description="alert only once the condition held on this many ticks in a row (1: at once)", examples=[3]
    )
    confirm_for: str | None = Field(
        None, description="alert only once the condition held this long (0s: at once)", examples=["10s"]
    )


class MuteOut(BaseModel):
    symbol: str = Field(description="the target: a symbol or group:NAME")
    until: datetime | None = Field(description="null: no set end (until unmuted, or until its condition)")
    by: str
    reason: str
    at: datetime | None
    says: str = Field(description="the mute as people say it", examples=["until above 250 unless 2x"])
    above: float | None = Field(None, description="ends when a tick is at or above this price")
    below: float | None = Field(None, description="ends when a tick is at or below this price")
    until_resolved: list[str] = Field([], description="ends when these anomalies (its open episodes) resolve")
    unless: float | None = Field(None, description="a move of this multiple of its rule's threshold breaks through")

    @classmethod
    def of(cls, mute: Mute) -> MuteOut:
        return cls(
            symbol=mute.symbol,
            until=mute.until,
            by=mute.by,
            reason=mute.reason,
            at=mute.at,
            says=mute.says(),
            above=mute.above,
            below=mute.below,
            until_resolved=list(mute.episodes),
            unless=mute.unless,
        )


class WindowOut(BaseModel):
    """A recurring mute (a maintenance window)."""

    id: str
    target: str
    rrule: str = Field(description="RFC 5545 recurrence, occurrences counted from the day it was made")
    duration_seconds: int
    timezone: str
    says: str
    by: str
    reason: str
    at: datetime | None
    unless: float | None = None

    @classmethod
    def of(cls, window: Window) -> WindowOut:
        every = window.every
        return cls(
            id=window.id,
            target=window.target,
            rrule=every.rule,
            duration_seconds=every.seconds,
            timezone=every.timezone,
            says=window.says(),
            by=window.by,
            reason=window.reason,
            at=window.at,
            unless=window.unless,
        )


class MuteList(BaseModel):
    items: list[MuteOut] = Field(description="mutes in force, soonest to end first")
    windows: list[WindowOut] = Field([], description="recurring mutes, in force or not, by target")


class MuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt duration must not become a mute without end

    symbol: str = Field(description="a symbol or group:NAME", examples=["TSLA", "group:crypto"])
    duration: str | None = Field(
        None,
        description="e.g. 30m, 2h, 1d, or forever (until unmuted); leave out (and the other ends) for 1h, as in Slack",
        examples=["2h"],
    )
    until: datetime | None = Field(None, description="end time (ISO-8601); instead of duration")
    until_resolved: bool = Field(False, description="until the symbol's open episodes resolve")
    above: float | None = Field(None, gt=0, description="until a tick is at or above this price")
    below: float | None = Field(None, gt=0, description="until a tick is at or below this price")
    unless: float | None = Field(None, gt=1, le=100, description="let moves of this multiple of the threshold through")
    reason: str = Field("", max_length=MAX_REASON_CHARS)

    def ends_otherwise(self) -> bool:
        """Bounded by something other than a length (so no default length applies)."""
        return self.bound_by() != "duration"

    def bound_by(self) -> str:
        """The field that ends the mute (the one an error about its end names)."""
        given = {"until": self.until, "until_resolved": self.until_resolved, "above": self.above, "below": self.below}
        return next((name for name, value in given.items() if value), "duration")


class WindowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="a symbol or group:NAME", examples=["group:crypto"])
    rrule: str = Field(
        description="when it starts: an RFC 5545 RRULE, hourly or coarser",
        examples=["FREQ=WEEKLY;BYDAY=SU;BYHOUR=0;BYMINUTE=0"],
        max_length=500,
    )
    duration: str = Field(description="how long each occurrence lasts, 1m to 7d", examples=["2h"])
    timezone: str = Field("UTC", description="the time zone of the RRULE's hours", examples=["UTC", "America/New_York"])
    unless: float | None = Field(None, gt=1, le=100)
    reason: str = Field("", max_length=MAX_REASON_CHARS)


class GroupOut(BaseModel):
    name: str
    members: list[str] = Field(description="symbols and glob patterns (e.g. *-USD)")
    by: str
    at: datetime | None

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        return cls(name=group.name, members=list(group.members), by=group.by, at=group.at)


class GroupList(BaseModel):
    items: list[GroupOut] = Field(description="by name")


class GroupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[str] = Field(
        min_length=1, max_length=500, description="the group's members (replacing them)", examples=[["NVDA", "AMD"]]
    )


class ActorOut(BaseModel):
    name: str
    via: Literal["slack", "api", "cli", "tickwatch"]
    id: str | None


class ChangeOut(BaseModel):
    at: datetime
    action: str
    symbol: str
    old: dict | None
    new: dict | None
    actor: ActorOut

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        actor = ActorOut(name=change.actor.name, via=change.actor.via, id=change.actor.id)
        return cls(
            at=change.at, action=change.action, symbol=change.symbol, old=change.old, new=change.new, actor=actor
        )


class AuditLog(BaseModel):
    items: list[ChangeOut] = Field(description="newest first")


class WatchRequest(BaseModel):
    """A person's watch: their own rule on a symbol or a group, alerted to them alone by Slack DM."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(max_length=40, description="a symbol or group:NAME", examples=["TSLA"])
    rule: RuleName = Field(examples=["drop"])
    threshold_pct: float = Field(gt=0, description="in the rule's unit: % (drop, rise, gap, relative), sigmas, times")
    window_seconds: int | None = Field(None, description="default: TICKWATCH_WINDOW_SECONDS", examples=[600])


class WatchOut(BaseModel):
    user: str
    target: str
    rule: RuleName
    threshold_pct: float
    window_seconds: int
    says: str = Field(description="as people say it, e.g. `TSLA drop 3% in 10m`")
    at: datetime

    @classmethod
    def of(cls, watch: Watch) -> WatchOut:
        return cls(
            user=watch.user,
            target=watch.target,
            rule=watch.rule,
            threshold_pct=watch.threshold_pct,
            window_seconds=watch.window_seconds,
            says=watch.says(),
            at=datetime.fromtimestamp(watch.at, UTC),
        )


class WatchList(BaseModel):
    items: list[WatchOut] = Field(description="by target, then rule")
    quiet_hours: str | None = Field(description="HH:MM-HH:MM in the person's Slack time zone; none: off")
    limit: int = Field(description="the most watches one person may have (TICKWATCH_MAX_WATCHES_PER_USER)")


class QuietHoursRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quiet_hours: str | None = Field(
        max_length=11, description="HH:MM-HH:MM in the person's Slack time zone, or null: off", examples=["22:00-07:00"]
    )
