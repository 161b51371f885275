"""Delivery tasks on the alerts queue: one alert event on one channel, and the follow-up edit of a throttled
Slack message. Each channel is its own task, so a failing channel is retried with backoff and never blocks
the others.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from celery import Task
from celery.signals import worker_process_init

from pipeline import keys
from pipeline.alerting.channels import Notifier, build, channel_names
from pipeline.alerting.channels.slack import SlackChannel
from pipeline.alerting.slack_messages import Kind
from pipeline.metrics import Recorder
from pipeline.schema import AlertEvent
from pipeline.settings import get_settings
from pipeline.worker.app import DELIVER, SLACK_REFRESH, app, context

DELIVERED_TTL_SECONDS = 7 * 24 * 3600
CLAIM_TTL_SECONDS = 120  # longer than one send with its own retries takes
LATENCY_SAMPLES = 10_000


@cache
def notifier(channel: str) -> Notifier:
    """This process's notifier of a channel, made once."""
    return build(channel, context())


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Connect every channel when a worker child starts, not on its first alert."""
    for channel in channel_names(get_settings()):
        notifier(channel)


@app.task(
    bind=True,
    name=DELIVER,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
    max_retries=get_settings().delivery_max_retries,
)
def deliver(self: Task, channel: str, event: dict[str, Any]) -> str:
    """Send one alert on one channel, at most once per channel as far as we can tell."""
    redis = context().redis
    alert = AlertEvent.model_validate(event)
    delivered = keys.delivered(channel, alert.id)
    # Claim before sending, so two copies of this task never both send; release the claim on failure.
    figures = Recorder()
    if not redis.set(delivered, "sending", nx=True, ex=CLAIM_TTL_SECONDS):
        figures.count("deliveries", channel=channel, outcome="duplicate")
        figures.send(redis)
        return "duplicate"
    try:
        notifier(channel).send(alert)
    except Exception:
        redis.delete(delivered)
        figures.count("deliveries", channel=channel, outcome="failed")
        figures.send(redis)
        raise
    pipe = redis.pipeline(transaction=False)
    pipe.set(delivered, "sent", ex=DELIVERED_TTL_SECONDS)
    figures.count("deliveries", channel=channel, outcome="sent")
    if alert.data.published_at is not None and alert.type == "anomaly.detected":
        latency_ms = (datetime.now(UTC) - alert.data.published_at).total_seconds() * 1000
        figures.observe("delivery_latency_seconds", latency_ms / 1000, channel=channel)
        pipe.lpush(keys.delivery_latencies(channel), round(latency_ms, 1))
        pipe.ltrim(keys.delivery_latencies(channel), 0, LATENCY_SAMPLES - 1)
    figures.add_to(pipe)
    pipe.execute()
    return "sent"


@app.task(
    name=SLACK_REFRESH,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
    max_retries=get_settings().delivery_max_retries,
)
def slack_refresh(kind: Kind, key: str) -> None:
    """Edit an alert's (or a storm's) Slack message with its newest state: the follow-up of a throttled change."""
    slack = notifier("slack")
    assert isinstance(slack, SlackChannel), "slack_refresh runs only where Slack is configured"
    slack.messages.refresh(kind, key)
