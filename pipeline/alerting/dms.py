"""Personal watch alerts by DM: one message per episode, edited in place, held in the person's quiet hours and
caught up in one DM when they end.

The workers hand each watch alert's change (detected, deeper, resolved) to `enqueue`: a task on the alerts queue
with its backstop in Redis (pipeline.worker.later), so a worker killed at any point loses nothing. Each alert's
DM is a record in Redis (the anomaly as it stands, its watch, the message ref), changed under a per-alert lock, so
a re-run edits the message it posted instead of posting another. Quiet hours are read in the person's own time
zone (users.info, cached a day); the catch-up runs on the alerts workers' clock once a minute across them all.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from pipeline import keys
from pipeline.alerting.dm_messages import catch_up_message, watch_message
from pipeline.context import Context, slack_client
from pipeline.schema import Anomaly
from pipeline.settings import Settings
from pipeline.watches import Watches
from pipeline.worker import later
from pipeline.worker.app import DELIVER_DM, app, context, send

logger = logging.getLogger(__name__)

RECORD_TTL_SECONDS = 7 * 24 * 3600
RECENT = 20  # alerts App Home lists per person
ZONE_TTL_SECONDS = 24 * 3600
BACKSTOP_SECONDS = 60
RETRY_CAP_SECONDS = 60
LOCK_SECONDS = 30


@dataclass
class Record:
    """A watch alert's DM: the anomaly as it stands (with what people did to it), its watch, where it was posted
    (or the catch-up DM that carries it)."""

    anomaly: Anomaly
    target: str
    says: str
    channel: str | None = None
    ts: str | None = None
    catch_up: str | None = None
    unwatched: bool = False
    held: bool = False

    def encode(self) -> bytes:
        return orjson.dumps({**self.__dict__, "anomaly": self.anomaly.model_dump(mode="json")})

    @classmethod
    def decode(cls, raw: bytes | str) -> Record:
        data = orjson.loads(raw)
        return cls(**{**data, "anomaly": Anomaly.model_validate(data["anomaly"])})


def load(redis: Redis, anomaly_id: str) -> Record | None:
    raw = redis.get(keys.dm_record(anomaly_id))
    return Record.decode(raw) if raw else None


def save(redis: Redis, record: Record) -> None:
    redis.set(keys.dm_record(record.anomaly.id), record.encode(), ex=RECORD_TTL_SECONDS)


def recent(redis: Redis, user: str) -> list[Record]:
    """A person's latest watch alerts, newest first (App Home)."""
    ids = [keys.text(i) for i in redis.lrange(keys.dm_recent(user), 0, RECENT - 1)]
    raw = redis.mget([keys.dm_record(i) for i in ids]) if ids else []
    return [Record.decode(r) for r in raw if r]


def enqueue(redis: Redis, settings: Settings, anomaly: Anomaly, target: str, says: str) -> None:
    """Hand one change of a watch alert on (from the workers' batch, before their state commit)."""
    payload = (anomaly.model_dump(mode="json"), target, says)
    queue = settings.alerts_queue
    later.send_later(redis, DELIVER_DM, *payload, 0, queue=queue, at=time.time() + BACKSTOP_SECONDS)
    send(settings, DELIVER_DM, *payload, 0, queue=queue)


@app.task(name=DELIVER_DM, soft_time_limit=60, time_limit=90)
def deliver(anomaly: dict[str, Any], target: str, says: str, attempt: int = 0) -> str:
    """Post or edit one watch alert's DM (held instead in the person's quiet hours); returns what happened."""
    ctx = context()
    found = Anomaly.model_validate(anomaly)
    payload = (anomaly, target, says, attempt)
    try:
        outcome = _deliver(ctx, found, target, says)
    except Exception as error:
        later.cancel(ctx.redis, DELIVER_DM, *payload, queue=ctx.settings.alerts_queue)
        if attempt >= ctx.settings.delivery_max_retries:
            logger.error("watch DM %s to %s: giving up (%s)", found.id, found.watcher, error)
            return "gave up"
        at = time.time() + min(RETRY_CAP_SECONDS, 2.0**attempt)
        later.send_later(
            ctx.redis, DELIVER_DM, anomaly, target, says, attempt + 1, queue=ctx.settings.alerts_queue, at=at
        )
        return "retrying"
    later.cancel(ctx.redis, DELIVER_DM, *payload, queue=ctx.settings.alerts_queue)
    return outcome


def _deliver(ctx: Context, anomaly: Anomaly, target: str, says: str) -> str:
    redis, user = ctx.redis, anomaly.watcher
    assert user is not None
    with _locked(redis, anomaly.id):
        record = load(redis, anomaly.id)
        if record is None:
            record = Record(anomaly, target, says)
            pipe = redis.pipeline(transaction=False)
            pipe.lpush(keys.dm_recent(user), anomaly.id)
            pipe.ltrim(keys.dm_recent(user), 0, RECENT - 1)
            pipe.execute()
        elif newer(anomaly, record.anomaly):  # detection's newest view, keeping what the person did to it
            kept = record.anomaly.model_dump(include={"acknowledged_by", "acknowledged_at", "status"})
            if anomaly.status == "resolved":
                kept.pop("status")
            record.anomaly = anomaly.model_copy(update=kept)
        if record.channel is None and record.catch_up is None and _quiet(ctx, user):
            record.held = True
            save(redis, record)
            _hold(redis, user, anomaly.id)
            return "held"
        save(redis, record)
        if record.channel and record.anomaly.status != "resolved" and _throttled(ctx, anomaly, target, says):
            return "throttled"
        return show(ctx.redis, _slack(), record)


def newer(anomaly: Anomaly, known: Anomaly) -> bool:
    """Whether detection's `anomaly` is at least as recent as the stored one (a retried or follow-up task may
    carry an older view): an episode's end, or a peak as late."""
    if known.resolved_at is not None:
        return anomaly.resolved_at is not None
    return anomaly.resolved_at is not None or anomaly.peak_timestamp >= known.peak_timestamp


def _throttled(ctx: Context, anomaly: Anomaly, target: str, says: str) -> bool:
    """A new peak edits the DM at most once per `slack_edit_interval_seconds`; inside it, one follow-up renders
    the newest stored view when the interval has passed, so the last peak is never lost."""
    redis, every = ctx.redis, ctx.settings.slack_edit_interval_seconds
    window_ms = max(1, round(every * 1000))
    if redis.set(keys.slack_message("throttle", "dm", anomaly.id), 1, nx=True, px=window_ms):
        return False
    if redis.set(keys.slack_message("follow-up", "dm", anomaly.id), 1, nx=True, px=window_ms):
        payload = (anomaly.model_dump(mode="json"), target, says, 0)
        later.send_later(redis, DELIVER_DM, *payload, queue=ctx.settings.alerts_queue, at=time.time() + every)
    return True


def show(redis: Redis, client: WebClient, record: Record) -> str:
    """Post the record's DM, or edit it where it already is (its own message, or the catch-up DM with it)."""
    if record.catch_up is not None:
        render_catch_up(redis, client, record.catch_up)
        return "edited"
    text, blocks = watch_message(record.anomaly, record.says, unwatched=record.unwatched)
    if record.channel and record.ts:
        client.chat_update(channel=record.channel, ts=record.ts, text=text, blocks=blocks)
        return "edited"
    assert record.anomaly.watcher is not None
    answer = client.chat_postMessage(channel=record.anomaly.watcher, text=text, blocks=blocks)
    record.channel, record.ts, record.held = answer["channel"], answer["ts"], False
    save(redis, record)
    return "posted"


# --- quiet hours ---------------------------------------------------------------------------------


def _quiet(ctx: Context, user: str, at: datetime | None = None) -> bool:
    quiet = Watches(ctx.redis, ctx.settings).quiet_of(user)
    return quiet is not None and quiet.quiet_at(at or datetime.now(UTC), zone_of(ctx.redis, _slack(), user))


def zone_of(redis: Redis, client: WebClient, user: str) -> ZoneInfo:
    """The person's time zone as Slack knows it (users.info `tz`), cached a day; UTC when Slack cannot say."""
    cached = redis.get(keys.user_zone(user))
    name = keys.text(cached) if cached else None
    if name is None:
        try:
            name = (client.users_info(user=user).get("user") or {}).get("tz") or "UTC"
        except SlackApiError as error:
            logger.warning("users.info %s: %s; quiet hours read in UTC", user, error.response.get("error"))
            name = "UTC"
        redis.set(keys.user_zone(user), name, ex=ZONE_TTL_SECONDS)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


_HOLD = """
local held = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]) or '[]')
for _, id in ipairs(held) do if id == ARGV[2] then return 0 end end
table.insert(held, ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(held))
return 1
"""


def _hold(redis: Redis, user: str, anomaly_id: str) -> None:
    redis.eval(_HOLD, 1, keys.DM_HELD, user, anomaly_id)


def catch_up_if_due(ctx: Context, now: datetime) -> int:
    """Once per `quiet_check_seconds` across the alerts workers: one catch-up DM to each person whose quiet hours
    ended with alerts held; returns how many were sent."""
    redis = ctx.redis
    if not ctx.settings.slack_bot_token or not redis.hlen(keys.DM_HELD):
        return 0
    every = ctx.settings.quiet_check_seconds
    if not redis.set(keys.dm_check(int(now.timestamp() // every)), 1, nx=True, ex=max(1, round(3 * every))):
        return 0
    sent = 0
    for raw_user in redis.hkeys(keys.DM_HELD):
        user = keys.text(raw_user)
        if not _quiet(ctx, user, now):
            sent += catch_up(ctx, user)
    return sent


def catch_up(ctx: Context, user: str) -> int:
    """Post the catch-up DM of the alerts held for `user` (taken atomically: a second call finds none)."""
    redis = ctx.redis
    pipe = redis.pipeline(transaction=True)
    pipe.hget(keys.DM_HELD, user)
    pipe.hdel(keys.DM_HELD, user)
    raw, _ = pipe.execute()
    catch_up_id = f"catchup-{uuid.uuid4().hex[:12]}"
    taken = []
    for anomaly_id in orjson.loads(raw) if raw else []:
        with _locked(redis, anomaly_id):
            record = load(redis, anomaly_id)
            if record is not None and record.held and record.channel is None:  # not posted on its own since
                record.catch_up, record.held = catch_up_id, False
                save(redis, record)
                taken.append(anomaly_id)
    if not taken:
        return 0
    quiet = Watches(redis, ctx.settings).quiet_of(user)
    meta = {"user": user, "ids": taken, "quiet": quiet.says() if quiet else ""}
    redis.set(keys.dm_catch_up(catch_up_id), orjson.dumps(meta), ex=RECORD_TTL_SECONDS)
    render_catch_up(redis, _slack(), catch_up_id)
    return 1


def render_catch_up(redis: Redis, client: WebClient, catch_up_id: str) -> None:
    """Post or edit a catch-up DM with its alerts as they stand now."""
    raw = redis.get(keys.dm_catch_up(catch_up_id))
    if raw is None:
        return
    meta = orjson.loads(raw)
    records = [r for r in (load(redis, i) for i in meta["ids"]) if r is not None]
    text, blocks = catch_up_message([(r.anomaly, r.says) for r in records], meta["quiet"])
    if meta.get("ts"):
        client.chat_update(channel=meta["channel"], ts=meta["ts"], text=text, blocks=blocks)
        return
    answer = client.chat_postMessage(channel=meta["user"], text=text, blocks=blocks)
    meta.update(channel=answer["channel"], ts=answer["ts"])
    redis.set(keys.dm_catch_up(catch_up_id), orjson.dumps(meta), ex=RECORD_TTL_SECONDS)


# --- what the person does with them (the bot's buttons) ------------------------------------------


@dataclass(frozen=True)
class Refusal:
    text: str


@dataclass
class Change:
    record: Record
    removed: list[Any] = field(default_factory=list)


def acknowledge(redis: Redis, client: WebClient, anomaly_id: str, user: str) -> Change | Refusal:
    """The watcher acknowledges their own alert (the first click wins); its DM is redrawn."""
    with _locked(redis, anomaly_id):
        record = load(redis, anomaly_id)
        if record is None or record.anomaly.watcher != user:
            return Refusal("That alert is not one of your watches' (or it is over a week old).")
        if record.anomaly.acknowledged_by is None:
            record.anomaly = record.anomaly.model_copy(
                update={"acknowledged_by": user, "acknowledged_at": datetime.now(UTC), "status": "acknowledged"}
            )
            save(redis, record)
        show(redis, client, record)
        return Change(record)


def unwatch(redis: Redis, client: WebClient, settings: Settings, anomaly_id: str, user: str) -> Change | Refusal:
    """The watcher stops the watch that raised this alert; its DM says so."""
    with _locked(redis, anomaly_id):
        record = load(redis, anomaly_id)
        if record is None or record.anomaly.watcher != user:
            return Refusal("That alert is not one of your watches' (or it is over a week old).")
        removed = Watches(redis, settings).remove(user, record.target, record.anomaly.rule)
        record.unwatched = True
        save(redis, record)
        show(redis, client, record)
        return Change(record, removed)


@contextmanager
def _locked(redis: Redis, anomaly_id: str) -> Iterator[None]:
    with redis.lock(keys.slack_message("lock", "dm", anomaly_id), timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS):
        yield


@cache
def _slack() -> WebClient:
    return slack_client(context().settings)
