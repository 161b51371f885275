"""Reminders of long mutes: the author of a mute longer than a day gets a Slack DM before it ends, so a mute
nobody remembers neither ends unnoticed nor lingers.

The check runs on the alerts workers' clock (pipeline.worker.scheduler), once per minute across all of them
(SET NX on the minute); each mute is claimed once (SET NX on its target and start), and the DM itself is a
delayed task in Redis (pipeline.worker.later), so a worker killed at any point neither loses nor repeats one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from slack_sdk import WebClient

from pipeline import keys
from pipeline.alerting.messages import template
from pipeline.context import Context, slack_client
from pipeline.mutes import MAX_MUTE, Mute
from pipeline.worker import later
from pipeline.worker.app import MUTE_REMINDER, app, context

logger = logging.getLogger(__name__)
LONG_MUTE = timedelta(days=1)  # shorter mutes end before anyone forgets them
CHECK_SECONDS = 60
RETRY_CAP_SECONDS = 60


def due(mutes: Iterable[Mute], now: datetime, lead: timedelta) -> list[Mute]:
    """The mutes whose author should be reminded now: longer than a day, made by someone Slack can reach, ending
    within `lead`."""
    return [
        m
        for m in mutes
        if m.by_id
        and m.until is not None
        and m.at is not None
        and m.until - m.at > LONG_MUTE
        and now < m.until <= now + lead
    ]


def text(mute: Mute, now: datetime) -> str:
    assert mute.until is not None and mute.at is not None  # due() keeps only such
    left, age = (mute.until - now).total_seconds(), (now - mute.at).total_seconds()
    return template("mute_reminder.j2").render(m=mute, left=left, age=age).strip()


def check_if_due(ctx: Context, now: datetime) -> int:
    """Queue this minute's reminders unless another worker has; returns how many were queued."""
    redis, settings = ctx.redis, ctx.settings
    if not settings.slack_bot_token:
        return 0
    if not redis.set(keys.reminder_check(int(now.timestamp() // CHECK_SECONDS)), 1, nx=True, ex=3 * CHECK_SECONDS):
        return 0
    mutes = [Mute.decode(keys.text(k), v) for k, v in redis.hgetall(keys.MUTES).items()]
    queued = 0
    for mute in due(mutes, now, timedelta(seconds=settings.mute_reminder_seconds)):
        assert mute.at is not None and mute.by_id is not None
        claim = keys.mute_reminded(mute.symbol, mute.at.timestamp())
        if redis.set(claim, 1, nx=True, ex=round(MAX_MUTE.total_seconds())):
            later.send_later(
                redis, MUTE_REMINDER, mute.by_id, text(mute, now), queue=settings.alerts_queue, at=now.timestamp()
            )
            queued += 1
    return queued


@cache
def _slack() -> WebClient:
    return slack_client(context().settings)


@app.task(name=MUTE_REMINDER, soft_time_limit=60, time_limit=90)
def remind(user_id: str, message: str, attempt: int = 0) -> str:
    """DM the reminder (chat.postMessage to the user's id opens the app's DM with them)."""
    ctx = context()
    try:
        _slack().chat_postMessage(channel=user_id, text=message)
    except Exception as error:
        if attempt >= ctx.settings.delivery_max_retries:
            logger.error("mute reminder to %s: giving up (%s)", user_id, error)
            return "gave up"
        at = time.time() + min(RETRY_CAP_SECONDS, 2.0**attempt)
        later.send_later(
            ctx.redis, MUTE_REMINDER, user_id, message, attempt + 1, queue=ctx.settings.alerts_queue, at=at
        )
        return "retrying"
    return "sent"
