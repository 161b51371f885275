"""Configuration: one pydantic-settings object, read from `TICKWATCH_*` env vars (and Slack's own names).

Defaults point at the local real stack started by `tickwatch stack up`, so nothing needs setting to try it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pipeline.detect.rules import MAX_CONFIRM_SECONDS, MAX_CONFIRM_TICKS, MAX_WINDOW_SECONDS, threshold_problem

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _comma_list(value: object) -> object:
    """A list setting as a person types it: JSON (`["U1", "U2"]`) or comma-separated (`U1,U2`); blank: empty."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]


class ApiToken(BaseModel):
    """A static API token given in the environment (tokens made with `tickwatch token create` live in Redis)."""

    name: str = Field(min_length=1)
    token: SecretStr = Field(min_length=16, description="at least 16 characters")
    scope: Literal["read", "admin"] = "read"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWATCH_", env_file=".env", extra="ignore")

    # --- engines -----------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis: detection state, controls, webhook deliveries and the Celery broker",
    )
    es_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch: ticks, anomalies, the audit and digests")

    # --- Kafka topics and consumer group ------------------------------------------------------------
    ticks_topic: str = Field("financial_prices", description="the topic ticks are published to (key = symbol)")
    dlq_topic: str = Field(
        "financial_prices.dlq", description="malformed ticks go here with the original bytes and the reason"
    )
    alerts_topic: str = Field(
        "alerts", description="alert lifecycle events (anomaly.detected, anomaly.resolved, digest.daily)"
    )
    ticks_partitions: int = Field(
        6, ge=1, description="partitions of the ticks topic when `tickwatch stack init` creates it"
    )
    consumer_group: str = Field("tickwatch-bridge", description="the bridges' Kafka consumer group")

    # --- Elasticsearch ------------------------------------------------------------------------------
    index_prefix: str = Field("tickwatch", description="prefix of every Elasticsearch index and alias")
    tick_retention_days: int = Field(
        30, ge=1, description="days of tick indices `tickwatch retention` keeps by default"
    )

    # --- detection defaults (per-symbol overrides live in Redis, see pipeline.controls) -------------
    drop_pct: float = Field(5.0, ge=0, lt=100, description="0 turns the drop rule off")
    rise_pct: float = Field(5.0, ge=0, lt=100, description="0 turns the rise rule off")
    gap_pct: float = Field(
        0,
        ge=0,
        lt=100,
        description="gap rule: alert when a session's first tick is this % from the last before the open; 0 = off",
    )
    relative_pct: float = Field(
        0,
        ge=0,
        lt=100,
        description="relative rule: alert when a symbol's own move (net of beta times its benchmark's) reaches this %; "
        "0 = off",
    )
    window_seconds: int = Field(300, gt=0, le=MAX_WINDOW_SECONDS, description="default window W of the rules")
    cooldown_seconds: int | None = Field(None, ge=0, description="default and minimum: window_seconds")
    lateness_seconds: int = Field(30, ge=0, description="how far out of order ticks may arrive and still be evaluated")
    max_future_seconds: int = Field(86_400, ge=0, description="ticks dated further ahead are dead-lettered")

    # --- robust detection (pipeline.rules): skewed clocks, bad prints, volatility-aware rules ----------
    clock_skew_seconds: int = Field(
        60,
        ge=0,
        description="a tick dated this much further ahead of the clock and "
        "of its symbol's newest tick is quarantined; 0 = off",
    )
    confirm_ticks: int = Field(
        2,
        ge=1,
        le=MAX_CONFIRM_TICKS,
        description="ticks in a row a rule's condition must hold on before it alerts (1 = at once)",
    )
    confirm_seconds: float = Field(
        0, ge=0, le=MAX_CONFIRM_SECONDS, description="and event seconds it must hold for (0 = ticks only)"
    )
    zscore_k: float = Field(0, ge=0, description="zscore rule: alert at a move of k sigmas over the window; 0 = off")
    volume_spike_x: float = Field(
        0, ge=0, description="volume rule: alert at x times the usual volume over the window; 0 = off"
    )
    baseline_seconds: int = Field(
        3600,
        ge=60,
        description="time constant of the usual volatility and volume the zscore and volume rules measure against",
    )

    @field_validator("zscore_k", "volume_spike_x")
    @classmethod
    def _threshold(cls, value: float, info: ValidationInfo) -> float:
        if problem := threshold_problem("zscore" if info.field_name == "zscore_k" else "volume", value):
            raise ValueError(problem)
        return value

    # --- bridge batching ----------------------------------------------------------------------------
    batch_max_ticks: int = Field(2000, ge=1, description="most ticks in one batch the bridge hands to a worker")
    batch_max_wait_ms: int = Field(25, ge=1, description="how long the bridge collects a batch after its first record")
    lanes: int = Field(2, ge=1, description="batches per poll, by partition; worth one per worker process")
    celery_queue: str = Field("ticks", description="the Celery queue of tick batches")
    alerts_queue: str = Field("alerts", description="the Celery queue of alert deliveries (Slack, Kafka, webhooks)")
    gap_timeout_seconds: int = Field(
        600, ge=1, description="how long a batch waits for a missing predecessor before skipping the gap"
    )

    # --- alert channels -----------------------------------------------------------------------------
    alpaca_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_KEY"), description="`tickwatch ingest alpaca`: your key id"
    )
    alpaca_api_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ALPACA_API_SECRET"), description="`tickwatch ingest alpaca`: its secret"
    )
    slack_bot_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_BOT_TOKEN"),
        description="Slack bot token (xoxb-…); with it, alerts and the digest go to Slack",
    )
    slack_signing_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET"),
        description="the Slack bot verifies every request with it (v0= HMAC-SHA256, 5-minute window)",
    )
    slack_app_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_APP_TOKEN"),
        description="app-level token (xapp-…, scope connections:write) for the bot in Socket Mode",
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        description="Slack Web API base URL (a local fake Slack in tests and the offline demo)",
    )
    slack_channel: str = Field("#market-alerts", description="the channel alerts are posted to")
    # Removed (webhooks are subscriptions now); declared only so that setting them fails loudly.
    webhook_urls: str | None = Field(None, description="removed: see docs/webhooks.md")
    webhook_secret: str | None = Field(None, description="removed: see docs/webhooks.md")
    slack_timeout_seconds: int = Field(
        10, ge=1, le=30, description="how long a Slack Web API call may take before it counts as failed"
    )
    slack_circuit_failures: int = Field(
        3, ge=1, description="failed Slack calls in a row after which alerts wait (no calls) for a probe to succeed"
    )
    slack_circuit_cooloff_seconds: float = Field(5, gt=0, description="how often an open Slack circuit is probed")
    delivery_max_retries: int = Field(
        8,
        ge=0,
        description="retries of one alert's delivery on one channel (waits while a circuit is open do not count)",
    )

    # --- alert messages in Slack: edits and storms (pipeline.notifiers.slack, pipeline.storms) ------
    slack_edit_interval_seconds: float = Field(
        10, ge=0, description="at most one edit per message this often for a new peak (state changes edit at once)"
    )
    storm_threshold: int = Field(
        5,
        ge=1,
        description="more alerts than this to one channel within storm_window_seconds are grouped in one message",
    )
    storm_window_seconds: int = Field(
        60, ge=1, description="the storm window; a storm lasts while alerts keep coming within it"
    )
    storm_edit_interval_seconds: float = Field(
        3, ge=0, description="at most one edit of a storm's message this often (chat.update is ~50/min)"
    )

    # --- Slack bot (bot/): who may change mutes and thresholds ---------------------------------------
    slack_admin_users: CommaList = Field(
        default_factory=list, description="JSON list of Slack user ids (U…); empty = everyone"
    )
    slack_admin_channels: CommaList = Field(
        default_factory=list, description="JSON list of Slack channel ids (C…) changes may be made from; empty = any"
    )

    # --- replay (tickwatch generate, pipeline.publish) ----------------------------------------------
    kafka_connect_timeout_seconds: float = Field(
        10.0, gt=0, description="how long `generate` waits for Kafka before saying it is not reachable"
    )

    # --- rate limits (pipeline.rate_limits), shared by every replica through Redis -----------------------
    api_rate_limit: str = Field("600/minute", description="requests per API token (e.g. 600/minute, 20/second)")
    slack_rate_limit: str = Field("60/minute", description="slash commands and clicks per Slack user")
    preview_rate_limit: str = Field(
        "10/hour", description="threshold previews per Slack user (each replays up to 7 days of ticks)"
    )

    @field_validator("api_rate_limit", "slack_rate_limit", "preview_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("a rate is a count per period, e.g. 600/minute, 20/second or 10/hour") from None
        return value

    # --- observability ------------------------------------------------------------------------------
    metrics_port: int = Field(9464, ge=0, description="bridge's own Prometheus port (taken: a free one); 0 = off")

    # --- HTTP API (api/, pipeline.tokens) --------------------------------------------------------------
    api_tokens: list[ApiToken] = Field(default_factory=list, description='JSON list of {"name","token","scope"}')
    slack_workspace_url: str | None = Field(
        None, description="e.g. https://acme.slack.com: anomalies link to their Slack message with https permalinks"
    )

    # --- daily digest (pipeline.digest, dags/daily_digest.py, `tickwatch digest`) ---------------------
    digest_tz: str = Field("UTC", description="IANA time zone whose calendar day a digest covers")
    digest_channel: str | None = Field(None, description="Slack channel of the digest; default: slack_channel")
    digest_schedule: str = Field(
        "30 21 * * 1-5", description="the DAG's cron schedule (UTC): weekdays after the US close"
    )
    digest_top: int = Field(5, ge=1, le=10, description="symbols per list (movers, drawdowns, rises; chart lines)")
    digest_silence_minutes: int = Field(
        15, ge=5, le=240, description="a slot this long with no tick while the market traded counts as silence"
    )

    @field_validator("digest_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC or America/New_York") from None
        return value

    # --- webhook subscriptions (pipeline.subscriptions, pipeline.webhook_delivery, pipeline.ssrf) ------
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys encrypting webhook secrets at rest, newest first (a comma-separated or JSON list): "
        "the first encrypts, any decrypts; unset: one generated into <stack_dir>/secrets/secret.key (set them "
        "where processes do not share that directory)",
    )
    secret_key: SecretStr | None = Field(None, description="one key, as TICKWATCH_SECRET_KEYS with one element")
    webhook_allow_networks: Annotated[list[IPvAnyNetwork], NoDecode, BeforeValidator(_comma_list)] = Field(
        default_factory=list,
        description="CIDRs webhooks may reach although not public, comma-separated or a JSON list, "
        "e.g. 127.0.0.0/8 for local receivers",
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode, BeforeValidator(_comma_list)] = Field(
        default=[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        min_length=1,
        description="seconds before each attempt, after the previous one failed (Standard Webhooks' schedule); "
        "comma-separated or a JSON list",
    )
    webhook_timeout_seconds: float = Field(15.0, gt=0, description="per attempt; connecting gets at most 3 s")
    webhook_disable_after_seconds: int = Field(
        5 * 86_400, gt=0, description="an endpoint failing without a success for this long is disabled"
    )
    webhook_circuit_failures: int = Field(
        5,
        ge=1,
        description="failed attempts in a row after which an endpoint's circuit opens (no attempts; "
        "deliveries wait on their schedule)",
    )
    webhook_circuit_cooloff_seconds: float = Field(
        60, gt=0, description="how long an open circuit waits before one probe attempt (success closes it)"
    )
    webhook_secret_grace_seconds: int = Field(
        86_400, ge=0, description="after rotate-secret, the old secret keeps signing for this long"
    )

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if any(delay < 0 for delay in value):
            raise ValueError("retry delays are seconds, not negative")
        return value

    # --- markets and feed health (pipeline.calendars, pipeline.feeds) -----------------------------------
    calendars: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object: symbol glob pattern -> exchange_calendars code (XNYS, XLON, XTKS, …) or "24/7"; '
        "first match wins; unmatched: symbols with - or / (crypto pairs) are 24/7, others XNYS",
    )
    benchmarks: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object: calendar code or group:NAME -> benchmark symbol, e.g. {"XNYS": "SPY", '
        '"24/7": "BTC-USD"}; a symbol\'s group wins over its calendar; alerts then give the market\'s and the own move',
    )
    beta_seconds: int = Field(
        432_000, ge=3600, description="time constant of each symbol's running beta against its benchmark (5 days)"
    )
    benchmark_history_seconds: int = Field(
        7200,
        ge=600,
        le=86_400,
        description="how much of each benchmark's recent prices the workers keep (longer windows get no market move)",
    )
    max_watches_per_user: int = Field(
        50, ge=1, le=1000, description="how many personal watches (/watch) one person may have"
    )
    quiet_check_seconds: float = Field(
        60, gt=0, description="how often the alerts workers look for quiet hours that ended, to send the catch-up DM"
    )
    mute_reminder_seconds: int = Field(
        3600, ge=60, le=86_400, description="how long before a mute longer than a day ends its author gets a DM"
    )
    feed_check_seconds: float = Field(10, gt=0, description="how often silent feeds are looked for (once per interval)")
    stale_factor: float = Field(
        10, gt=1, description="a feed is stale after this many times its usual gap between ticks (market open)"
    )
    stale_min_seconds: float = Field(120, gt=0, description="and never before this many seconds of silence")
    feed_down_threshold: int = Field(
        5, ge=2, description="symbols of one calendar silent at once that make one 'feed down' message, not one each"
    )

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, value: dict[str, str]) -> dict[str, str]:
        from pipeline.calendars import unknown_codes
        from pipeline.groups import normalise_target

        checked = {}
        for key, symbol in value.items():
            target = normalise_target(key) if key.lower().startswith("group:") else key
            if not target.startswith("group:") and unknown_codes([target]):
                raise ValueError(f"benchmarks: {key!r} is neither a calendar code (XNYS, 24/7, …) nor group:NAME")
            checked[target] = normalise_target(symbol)
            if checked[target].startswith("group:"):
                raise ValueError(f"benchmarks: the benchmark of {key!r} must be a symbol, not a group")
        return checked

    @field_validator("calendars")
    @classmethod
    def _known_calendars(cls, value: dict[str, str]) -> dict[str, str]:
        from pipeline.calendars import unknown_codes

        if unknown := unknown_codes(value.values()):
            raise ValueError(f"unknown calendar {', '.join(unknown)}: use exchange_calendars codes or 24/7")
        return value

    # --- logs ---------------------------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text", description="how every process logs: text lines, or JSON lines (with anomaly id, symbol, delivery id)"
    )
    log_level: Annotated[LogLevel, BeforeValidator(lambda value: str(value).upper())] = Field(
        "INFO", description="every process's log level (a command's --log-level wins): DEBUG, INFO, WARNING, ERROR"
    )

    # --- local stack --------------------------------------------------------------------------------
    stack_dir: Path = Field(
        Path("/var/tmp/tickwatch"), description="the local stack's data, logs, pid files and generated secret key"
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "tickwatch", description="downloaded Kafka jars and Elasticsearch zip"
    )
    kafka_version: str = Field("4.1.1", description="the Kafka the local stack runs")
    es_version: str = Field(
        "8.19.21", description="the Elasticsearch the local stack runs (the Python client's major matches it)"
    )
    es_heap: str = Field("768m", description="JVM heap of the local Elasticsearch")
    kafka_heap: str = Field("512m", description="JVM heap of the local Kafka")

    @field_validator("webhook_urls", "webhook_secret")
    @classmethod
    def _removed(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "TICKWATCH_WEBHOOK_URLS and TICKWATCH_WEBHOOK_SECRET were removed: webhook endpoints are "
                "subscriptions now, each with its own secret. Create one with POST /v1/webhooks (see "
                "docs/webhooks.md) and unset these variables."
            )
        return None

    @model_validator(mode="after")
    def _cooldown_covers_window(self) -> Settings:
        if self.cooldown_seconds is not None and self.cooldown_seconds < self.window_seconds:
            raise ValueError(
                "cooldown_seconds must be at least window_seconds (an episode ends only after the "
                "old reference has left the window)"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _blank_means_unset(cls, data: Any) -> Any:
        """`VAR=` (e.g. Compose's `${VAR:-}`) leaves an optional setting unset rather than setting it to ''."""
        if not isinstance(data, dict):
            return data
        optional = {
            name
            for name, field in cls.model_fields.items()
            if not field.is_required() and (field.default is None or field.default_factory is list)
        }
        aliases = {
            name: str(getattr(field.validation_alias, "choices", [name])[0]).lower()
            for name, field in cls.model_fields.items()
        }
        return {
            key: value
            for key, value in data.items()
            if not (
                isinstance(value, str)
                and not value.strip()
                and (key in optional or key.lower() in {aliases[name] for name in optional})
            )
        }

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        return _comma_list(value)

    @property
    def secret_keys_in_use(self) -> list[SecretStr]:
        """The keys that encrypt webhook secrets: TICKWATCH_SECRET_KEYS, else TICKWATCH_SECRET_KEY, else none
        (pipeline.webhooks.encryption generates one)."""
        return self.secret_keys or ([self.secret_key] if self.secret_key is not None else [])

    @property
    def effective_cooldown_seconds(self) -> int:
        return self.window_seconds if self.cooldown_seconds is None else self.cooldown_seconds

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        host, _, port = self.kafka_bootstrap.split(",")[0].rpartition(":")
        return host, int(port)

    @property
    def redis_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.redis_url)
        return parts.hostname or "127.0.0.1", parts.port or 6379

    @property
    def es_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.es_url)
        return parts.hostname or "127.0.0.1", parts.port or 9200


MISSING_SLACK_TOKEN = "set SLACK_BOT_TOKEN (xoxb-…, the Slack app's OAuth & Permissions page)"


def reveal(secret: SecretStr | str | None) -> str | None:
    """A secret setting's value, where it must be used (a client's token); never logged or shown. (A plain str:
    settings copied with `model_copy(update=…)`, which does not validate.)"""
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead of patching this."""
    return Settings()
