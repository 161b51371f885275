"""Delivery of feed health events on the alerts queue: `feed.stale` and `feed.recovered` to the Kafka `alerts`
topic, to webhook subscribers and to Slack (a message per symbol, edited in place when it recovers), and the one
"feed down" message of a calendar whose symbols went silent together.

Each channel of an event is claimed once it has gone (the same claim keys as alerts), so a retry resends only
what failed; a failed task schedules its own retry in Redis (pipeline.worker.later), where a restarted worker
finds it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from kafka import KafkaProducer
from slack_sdk import WebClient

from pipeline import keys
from pipeline.alerting.messages import feed_text
from pipeline.context import slack_client
from pipeline.ingest.topics import make_producer
from pipeline.schema import FeedEvent
from pipeline.settings import Settings
from pipeline.webhooks import subscriptions
from pipeline.worker import later
from pipeline.worker.app import FEED_EVENT, FEED_OUTAGE, app, context

logger = logging.getLogger(__name__)
SENT_TTL_SECONDS = 7 * 24 * 3600
RETRY_CAP_SECONDS = 60


@cache
def _producer() -> KafkaProducer:
    """This process's producer onto the alerts topic, made once."""
    return make_producer(context().settings, linger_ms=0)


@cache
def _slack() -> WebClient:
    """This process's Slack client (waits out 429s, as the digest's), made once."""
    return slack_client(context().settings)


@app.task(name=FEED_EVENT, soft_time_limit=60, time_limit=90)
def feed_event(event: dict[str, Any], attempt: int = 0) -> str:
    """Send one feed event on every channel not yet done; returns what happened."""
    ctx = context()
    redis, settings = ctx.redis, ctx.settings
    data = FeedEvent.model_validate(event["data"])
    channels = {
        "kafka": lambda: (
            _producer().send(settings.alerts_topic, key=data.symbol.encode(), value=orjson.dumps(event)).get(timeout=10)
        ),
        "webhooks": lambda: subscriptions.dispatch(redis, settings, event),
    }
    if settings.slack_bot_token and not data.grouped:
        channels["slack"] = lambda: _to_slack(settings, event, data)
    for channel, send in channels.items():
        claim = keys.delivered(f"feed-{channel}", event["id"])
        if redis.get(claim) == b"sent":
            continue
        try:
            send()
        except Exception as error:
            if attempt >= settings.delivery_max_retries:
                logger.error("%s %s on %s: giving up (%s)", event["type"], data.symbol, channel, error)
                return "gave up"
            at = time.time() + min(RETRY_CAP_SECONDS, 2.0**attempt)
            later.send_later(redis, FEED_EVENT, event, attempt + 1, queue=settings.alerts_queue, at=at)
            return "retrying"
        redis.set(claim, "sent", ex=SENT_TTL_SECONDS)
    return "sent"


def _to_slack(settings: Settings, event: dict[str, Any], data: FeedEvent) -> None:
    """Post a stale feed's message; on recovery, edit that message (or post, if it never went out)."""
    redis = context().redis
    if event["type"] == "feed.stale":
        text = feed_text("stale", data)
        posted = _slack().chat_postMessage(channel=settings.slack_channel, text=text, blocks=_blocks(text))
        redis.hset(keys.FEED_SLACK, event["id"], orjson.dumps([posted["channel"], posted["ts"]]))
        return
    text = feed_text("recovered", data)
    stale_id = event["id"].removesuffix("_recovered")
    ref = redis.hget(keys.FEED_SLACK, stale_id)
    if ref is None:
        _slack().chat_postMessage(channel=settings.slack_channel, text=text, blocks=_blocks(text))
    else:
        channel, ts = orjson.loads(ref)
        _slack().chat_update(channel=channel, ts=ts, text=text, blocks=_blocks(text))
        redis.hdel(keys.FEED_SLACK, stale_id)


def _blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


@app.task(name=FEED_OUTAGE, soft_time_limit=60, time_limit=90)
def feed_outage(calendar: str, silent: list[str], back: list[str], total: int, at: float, attempt: int = 0) -> str:
    """Post or edit a calendar's 'feed down' message with who is still silent and how many are back; the last
    edit, once none is silent, says the feed is back."""
    ctx = context()
    redis, settings = ctx.redis, ctx.settings
    if not settings.slack_bot_token:
        return "no slack"
    key = keys.feed_outage(calendar)
    state = {keys.text(k): keys.text(v) for k, v in redis.hgetall(key).items()}
    started = float(state.get("started", at))
    back_total = int(state.get("back", 0)) + len(back)
    text = feed_text("outage", calendar, silent, total, datetime.fromtimestamp(started, UTC), back_total)
    client = _slack()
    try:
        if "ts" in state:
            client.chat_update(channel=state["channel"], ts=state["ts"], text=text, blocks=_blocks(text))
        else:
            posted = client.chat_postMessage(channel=settings.slack_channel, text=text, blocks=_blocks(text))
            state.update(channel=posted["channel"], ts=posted["ts"])
    except Exception as error:
        if attempt < settings.delivery_max_retries:
            retry_at = time.time() + min(RETRY_CAP_SECONDS, 2.0**attempt)
            args = (calendar, silent, back, total, at, attempt + 1)
            later.send_later(redis, FEED_OUTAGE, *args, queue=settings.alerts_queue, at=retry_at)
            return "retrying"
        logger.error("feed down message of %s: giving up (%s)", calendar, error)
        return "gave up"
    if silent:
        redis.hset(
            key, mapping={"channel": state["channel"], "ts": state["ts"], "started": started, "back": back_total}
        )
    else:
        redis.delete(key)
    return "sent"
