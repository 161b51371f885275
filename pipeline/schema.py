"""The public data contracts: the tick on `financial_prices`, the anomaly, and the alert event envelope.

See docs/architecture.md (Contracts). Validation lives here so that every entry point (bridge, API, tests) rejects the
same inputs with the same human-readable reason.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, TypedDict, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9./_:\-]{1,20}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

Symbol = Annotated[str, Field(description="1-20 chars of A-Z 0-9 . - / _ : (upper-cased)")]


def normalise_symbol(value: str) -> str:
    """Upper-case and check a symbol; raises ValueError with the rule it broke."""
    symbol = value.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError("symbol must be 1-20 characters of A-Z 0-9 . - / _ :")
    return symbol


def to_utc(value: datetime) -> datetime:
    """Naive timestamps are UTC by contract; aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def iso(value: datetime) -> str:
    """RFC 3339 with millisecond precision and `Z`, as every Tickwatch message writes times."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


BAR_SOURCE = "bars"  # a Tick's `source` when it was derived from a bar (open, high, low, close)


class Tick(BaseModel):
    """One price observation, keyed by symbol on Kafka. `timestamp` is event time."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: Symbol
    timestamp: datetime
    price: float = Field(gt=0, allow_inf_nan=False)
    volume: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    source: str | None = Field(
        None,
        max_length=64,
        description=f"where the tick came from (optional), e.g. {BAR_SOURCE!r} for a market data file's bars, "
        "whose prints are trusted (never judged bad prints)",
    )

    @property
    def trusted(self) -> bool:
        return self.source == BAR_SOURCE

    @field_validator("symbol", mode="before")
    @classmethod
    def _symbol(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("symbol must be a string")
        return normalise_symbol(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp_is_iso(cls, value: Any) -> Any:
        # ISO-8601 date and time only: no epoch numbers (quoted or not), no bare dates.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _ISO_DATETIME.match(value.strip()):
            raise ValueError("timestamp must be an ISO-8601 date and time, e.g. 2026-11-23T14:30:00Z")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, value: datetime) -> datetime:
        try:
            return to_utc(value)
        except (OverflowError, ValueError):
            raise ValueError("timestamp is out of range") from None

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


# --- the compact forms the bridge and the workers pass each other (hot path: tuples, not models) ---------


class TickRow(NamedTuple):
    """A valid tick as a batch carries it (a JSON array on the wire: a model per tick would cost more than
    detecting on it)."""

    symbol: str
    ts: int  # event time, epoch ms
    price: float
    volume: float | None
    partition: int
    offset: int
    published: int | None  # when the record reached Kafka, epoch ms
    trusted: bool = False  # derived from a bar (Tick.source), see pipeline.detect.detection.SymbolState


class PartitionRange(TypedDict):
    """The offsets of one partition a batch covers: [first_offset, next_offset)."""

    topic: str
    partition: int
    first_offset: int
    next_offset: int


class Batch(TypedDict):
    """One `process_batch` task: a lane's partitions of one poll and their valid ticks."""

    parts: list[PartitionRange]
    ticks: list[TickRow]
    sent_at: float  # when the bridge handed it on, epoch s


class StoredTick(NamedTuple):
    """A tick as the storage task indexes it: its row, whether it came late and why it is suspect (if it is)."""

    symbol: str
    ts: int
    price: float
    volume: float | None = None
    partition: int = 0
    offset: int = 0
    published: int | None = None
    late: bool = False
    suspect_reason: str | None = None


class SuspectFlag(NamedTuple):
    """A tick stored by an earlier batch, found to be a bad print by a later one."""

    symbol: str
    ts: int
    reason: str


class InvalidTick(ValueError):
    """A message that is not a valid tick; `reason` is what goes on the dead-letter record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_tick(raw: bytes | None) -> Tick:
    """Bytes from Kafka to a Tick, or InvalidTick with a one-line reason (never any other exception)."""
    if not raw:
        raise InvalidTick("empty message")
    try:
        return Tick.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidTick(describe(error)) from None
    except Exception as error:  # whatever a hostile message triggers, it is dead-lettered
        raise InvalidTick(f"unreadable tick: {error}") from None


def describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


RuleName = Literal["drop", "rise", "zscore", "volume", "gap", "relative"]
RULES: tuple[RuleName, ...] = get_args(RuleName)
AnomalyStatus = Literal["open", "acknowledged", "resolved"]


class AckReason(StrEnum):
    """Why an alert was acknowledged: what tunes thresholds (pipeline.tuning)."""

    REAL = "real"
    NEWS = "news"
    EXPECTED = "expected"
    BAD_DATA = "bad_data"
    TOO_SENSITIVE = "too_sensitive"

    @property
    def label(self) -> str:
        return "real move" if self is AckReason.REAL else self.value.replace("_", " ")

    @property
    def deserved(self) -> bool:
        """The move deserved its alert (a threshold should keep it); bad data and too sensitive did not."""
        return self not in (AckReason.BAD_DATA, AckReason.TOO_SENSITIVE)


EventType = Literal["anomaly.detected", "anomaly.resolved", "digest.daily", "feed.stale", "feed.recovered"]


class SlackRef(BaseModel):
    """Where an anomaly's Slack message is, so every state change edits it instead of posting anew."""

    channel: str
    ts: str

    def permalink(self, workspace_url: str | None) -> str | None:
        """The message's link, built as Slack builds them (https://acme.slack.com/archives/C…/p<ts without the
        dot>), so listing many alerts costs no Web API call per item; None without the workspace's URL."""
        if not workspace_url:
            return None
        return f"{workspace_url.rstrip('/')}/archives/{self.channel}/p{self.ts.replace('.', '')}"


class Anomaly(BaseModel):
    """One episode of a rule holding for a symbol. The id is the same however often the ticks replay."""

    id: str
    symbol: Symbol
    rule: RuleName
    timestamp: datetime = Field(description="event time of the tick that crossed the threshold")
    price: float
    volume: float | None = None
    reference_price: float = Field(description="the window's extreme the change is measured from")
    reference_timestamp: datetime
    change_pct: float = Field(description="signed, e.g. -7.9: the price's move from `reference_price`, every rule")
    threshold_pct: float = Field(
        description="the rule's threshold: % for drop and rise, k (sigmas) for zscore, the volume multiple for volume"
    )
    window_seconds: int
    peak_price: float = Field(description="the most extreme price of the episode so far")
    peak_change_pct: float
    peak_timestamp: datetime
    started_at: datetime | None = Field(
        None,
        description="event time the condition started to hold (before "
        "`timestamp` when confirmation waited for more ticks)",
    )
    zscore: float | None = Field(None, description="zscore rule: the move over the window in sigmas")
    volume_ratio: float | None = Field(None, description="volume rule: the window's volume / the usual for it")
    published_at: datetime | None = Field(None, description="when the crossing tick reached Kafka")
    detected_at: datetime
    benchmark: str | None = Field(None, description="the symbol's benchmark (TICKWATCH_BENCHMARKS), when it has one")
    market_change_pct: float | None = Field(
        None, description="the benchmark's move in % over the same span as `change_pct` (reference to the tick)"
    )
    own_change_pct: float | None = Field(
        None, description="the symbol's own move in %: `change_pct` minus `beta` times `market_change_pct`"
    )
    beta: float | None = Field(
        None, description="the symbol's sensitivity to its benchmark, from its own history (1 until known)"
    )
    watcher: str | None = Field(None, description="a personal watch's alert: the Slack user it is for (by DM)")
    muted: bool = False
    broke_through: str | None = Field(
        None, description="the mutes in force that the move broke through (`unless 2x`): who muted, and why"
    )
    # Human state (the bot and the API change it; detection never overwrites it).
    status: AnomalyStatus = "open"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    ack_reason: AckReason | None = Field(None, description="why it was acknowledged, when the person said")
    resolved_at: datetime | None = Field(None, description="event time at which the episode ended")
    slack: SlackRef | None = None


class AlertEvent(BaseModel):
    """The envelope every channel carries: Kafka `alerts`, webhooks (and the source of Slack messages)."""

    type: EventType = "anomaly.detected"
    id: str
    timestamp: datetime
    data: Anomaly

    @classmethod
    def for_anomaly(cls, anomaly: Anomaly, type: EventType = "anomaly.detected") -> AlertEvent:
        """`anomaly.detected` (id `msg_<anomaly id>`, at detection) or `anomaly.resolved` (id
        `msg_<anomaly id>_resolved`, at the event time the episode ended): a replay yields the same ids."""
        if type == "anomaly.resolved":
            if anomaly.resolved_at is None:
                raise ValueError(f"anomaly {anomaly.id} has not resolved")
            return cls(type=type, id=f"msg_{anomaly.id}_resolved", timestamp=anomaly.resolved_at, data=anomaly)
        if type != "anomaly.detected":
            raise ValueError(f"{type} events do not carry one anomaly")
        return cls(id=f"msg_{anomaly.id}", timestamp=anomaly.detected_at, data=anomaly)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class FeedEvent(BaseModel):
    """`data` of `feed.stale` (a symbol silent while its market is open) and `feed.recovered` (its next tick)."""

    symbol: str
    calendar: str = Field(description="exchange_calendars code of its market, or 24/7")
    last_tick_at: datetime = Field(description="event time of its last tick before the silence")
    last_price: float
    usual_gap_seconds: float = Field(description="its usual gap between ticks while the market is open")
    noticed_at: datetime = Field(description="when the silence was noticed")
    recovered_at: datetime | None = Field(None, description="feed.recovered: event time of the tick that ended it")
    silent_seconds: float | None = Field(None, description="feed.recovered: how long it was silent")
    grouped: bool = Field(False, description="part of a 'feed down' of its whole calendar (one Slack message)")
