"""The Redis keyspace: every key Tickwatch keeps in Redis is named here, once.

A Redis database is one deployment (tests and benches use their own), so keys carry no deployment prefix.
Each entry says what the key holds; the module that owns the data says why it is kept that way.
"""

from __future__ import annotations

ROOT = "tickwatch:"


def text(raw: bytes | str) -> str:
    """A key or value Redis answered: bytes (clients do not decode, as window states are binary)."""
    return raw.decode() if isinstance(raw, bytes) else raw


# --- detection state and progress (pipeline.detect.state) --------------------------------------------------
STATS = ROOT + "stats"  # hash: running counters of bridges and workers (consumed, ticks, alerts, …)
PROGRESS_AT = ROOT + "progress_at"  # hash "topic:partition" -> when its progress last moved (epoch s)


def symbol_state(symbol: str) -> str:
    """A symbol's window and episode state (pipeline.detect.state.encode)."""
    return f"{ROOT}state:{symbol}"


def benchmark_track(symbol: str) -> str:
    """A benchmark's recent prices (pipeline.detect.market.Track), written by the batch that holds its ticks."""
    return f"{ROOT}market:{symbol}"


def watches_of(user: str) -> str:
    """A person's watches (pipeline.watches): hash "target|rule" -> JSON."""
    return f"{ROOT}watches:user:{user}"


def watches_on(target: str) -> str:
    """The watches on a symbol or group: hash "user|rule" -> JSON (what the workers read)."""
    return f"{ROOT}watches:on:{target}"


QUIET_HOURS = ROOT + "watches:quiet"  # hash user -> "HH:MM-HH:MM" in their own time zone
DM_HELD = ROOT + "dm:held"  # hash user -> JSON [anomaly ids] held during their quiet hours (pipeline.alerting.dms)


def dm_record(anomaly_id: str) -> str:
    """A watch alert's DM: JSON {anomaly, target, channel, ts, catch_up, unwatched} (pipeline.alerting.dms)."""
    return f"{ROOT}dm:alert:{anomaly_id}"


def dm_recent(user: str) -> str:
    """A person's latest watch alerts (list of anomaly ids, newest first): App Home lists them."""
    return f"{ROOT}dm:recent:{user}"


def dm_catch_up(catch_up_id: str) -> str:
    """A catch-up DM: JSON {user, ids, channel, ts}."""
    return f"{ROOT}dm:catchup:{catch_up_id}"


def user_zone(user: str) -> str:
    """A Slack user's time zone (users.info `tz`), cached a day."""
    return f"{ROOT}slack:tz:{user}"


def dm_check(slot: int) -> str:
    """Claimed by the alerts worker that runs the quiet-hours catch-up of this minute."""
    return f"{ROOT}dm:check:{slot}"


def partition_progress(topic: str, partition: int) -> str:
    """The next offset of a partition to apply."""
    return f"{ROOT}progress:{topic}:{partition}"


def partition_lock(topic: str, partition: int) -> str:
    return f"{ROOT}lock:{topic}:{partition}"


# --- operator controls (pipeline.controls) ------------------------------------------------------------------
MUTES = ROOT + "mutes"  # hash target (symbol or group:NAME) -> a mute (pipeline.mutes.Mute, JSON)
MUTE_WINDOWS = ROOT + "mutes:windows"  # hash window id -> a recurring mute (pipeline.mutes.Window, JSON)
GROUPS = ROOT + "groups"  # hash group name -> {"members": [symbols and patterns], "by", "at"} (pipeline.groups)
RULES = ROOT + "rules"  # hash "TARGET:rule" -> {"threshold_pct", "window_seconds", "cooldown_seconds", …}
API_TOKENS = ROOT + "api_tokens"  # hash sha256 hex -> {"name", "scope", "created_at"} (pipeline.tokens)

# --- metrics (pipeline.metrics) ------------------------------------------------------------------------------
METRICS = ROOT + "metrics"  # hash "name|label=value|…" -> number
METRICS_GAUGES = ROOT + "metrics:gauges"

# --- alert delivery (pipeline.alerting) ----------------------------------------------------------------------


def delivered(channel: str, event_id: str) -> str:
    """Claim of one event's delivery on one channel ("sending", then "sent")."""
    return f"{ROOT}delivered:{channel}:{event_id}"


def delivery_latencies(channel: str) -> str:
    """List of recent produce-to-delivery latencies (ms) of a channel: the bench and the demo read it."""
    return f"{ROOT}latency:{channel}"


def slack_message(name: str, kind: str, key: str) -> str:
    """Per Slack message of an alert or storm: `seen` (newest view), `throttle`, `pending`, `lock`."""
    return f"{ROOT}slack:{name}:{kind}:{key}"


SLACK_WORKSPACE_URL = ROOT + "slack:workspace_url"  # string: auth.test's url, for permalinks (the bot's cache)


def slack_member(user_id: str) -> str:
    """Whether a Slack user is a guest or from another organisation (users.info), cached by the bot."""
    return f"{ROOT}slack:member:{user_id}"


FEEDS = ROOT + "feeds"  # hash symbol -> its live feed (pipeline.feeds.cadence.Feed, JSON)
FEED_EPISODES = ROOT + "feeds:stale"  # hash symbol -> its open stale episode (pipeline.feeds.health.Episode)
FEED_SLACK = ROOT + "feeds:slack"  # hash event id of a feed.stale -> JSON [channel, ts] of its Slack message


def reminder_check(slot: int) -> str:
    """string: set by the worker that checks this minute for mutes to remind of (pipeline.alerting.reminders)"""
    return f"{ROOT}mutes:reminder-check:{slot}"


def mute_reminded(target: str, at: float) -> str:
    """string: the author of the mute of `target` made at `at` (epoch s) was reminded"""
    return f"{ROOT}mutes:reminded:{target}:{at:.3f}"


def feed_check(slot: int) -> str:
    """Taken by the one alerts worker that runs the feed check of interval `slot`."""
    return f"{ROOT}feeds:check:{slot}"


def feed_outage(calendar: str) -> str:
    """Hash: the 'feed down' Slack message of a calendar (channel, ts, started_ms, back)."""
    return f"{ROOT}feeds:outage:{calendar}"


def storm_of(anomaly_id: str) -> str:
    return f"{ROOT}storm:of:{anomaly_id}"


def storm_meta(storm_id: str) -> str:
    return f"{ROOT}storm:{storm_id}:meta"


def storm_members(storm_id: str) -> str:
    return f"{ROOT}storm:{storm_id}:members"


def storm_recent(channel: str) -> str:
    return f"{ROOT}storm:recent:{channel}"


def storm_active(channel: str) -> str:
    return f"{ROOT}storm:active:{channel}"


def circuit(name: str) -> str:
    """A circuit breaker's state (pipeline.circuit): `slack`, or `webhook:<subscription id>`."""
    return f"{ROOT}circuit:{name}"


TASKS_DUE = ROOT + "tasks:due"  # sorted set of delayed Celery tasks (JSON) by when they are due (worker.later)
SLACK_PROBLEMS = ROOT + "slack:problems"  # hash Slack error -> JSON {at, fix, count}: what waiting cannot fix

# --- webhooks (pipeline.webhooks) ----------------------------------------------------------------------------
WEBHOOKS = ROOT + "webhooks:"
SUBSCRIPTIONS = WEBHOOKS + "subscriptions"  # hash id -> JSON subscription
FAILING_SINCE = WEBHOOKS + "failing-since"  # hash id -> epoch s of the first failure in a row
DELIVERIES_DUE = WEBHOOKS + "due"  # sorted set of jobs "<delivery id>|<seq>" by when they may run
DELIVERY_RECORD_PREFIX = WEBHOOKS + "delivery:"


def delivery_record(delivery_id: str) -> str:
    """A delivery's JSON record, with the exact body that is signed."""
    return DELIVERY_RECORD_PREFIX + delivery_id


def delivery_log(subscription_id: str) -> str:
    """Sorted set of a subscription's delivery ids by creation time."""
    return f"{WEBHOOKS}log:{subscription_id}"


def delivery_slot(subscription_id: str) -> str:
    """The job sending to a subscription now: one request in flight per endpoint."""
    return f"{WEBHOOKS}slot:{subscription_id}"


def delivery_waiting(subscription_id: str) -> str:
    """Jobs that found the subscription's slot taken."""
    return f"{WEBHOOKS}waiting:{subscription_id}"
