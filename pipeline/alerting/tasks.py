"""Delivery tasks on the alerts queue: one alert event on one channel, and the follow-up edit of a throttled
Slack message. Each channel is its own task, so a failing channel never blocks the others.

Nothing waits in a worker's memory: a delivery that must be retried is scheduled in Redis (pipeline.worker.later)
and the task ends; before a delivery starts, its own re-run is scheduled there too (a lease) and cancelled when
it ends, so a worker killed mid-delivery loses nothing. Slack has a circuit breaker (pipeline.circuit): while it
is open, deliveries wait on their schedule without calling Slack, and one probe per cool-off tests it, so each
episode's message goes out seconds after Slack recovers. Refusals no retry can fix are told to operators
(pipeline.alerting.slack_errors) instead of being retried.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

from celery.signals import worker_process_init
from redis import Redis

from pipeline import circuit, keys, logs
from pipeline.alerting import slack_errors
from pipeline.alerting.channels import Notifier, build, channel_names
from pipeline.alerting.channels.slack import SlackChannel
from pipeline.alerting.slack_messages import Kind
from pipeline.metrics import Recorder
from pipeline.outage import Outage
from pipeline.schema import AlertEvent
from pipeline.settings import Settings, get_settings
from pipeline.worker import later
from pipeline.worker.app import DELIVER, SLACK_REFRESH, app, context, send

logger = logging.getLogger(__name__)

DELIVERED_TTL_SECONDS = 7 * 24 * 3600
LATENCY_SAMPLES = 10_000
RETRY_CAP_SECONDS = 10  # a failed delivery is tried again within this (or as Retry-After asks)
# A delivery a killed worker had taken but not started runs again after this (not after the broker's
# visibility timeout); a copy still waiting in a long queue then finds it sent.
QUEUED_BACKSTOP_SECONDS = 60


def lease_seconds(settings: Settings) -> int:
    """How long one delivery may take (a Slack call and its fallback, plus margin); then its lease re-runs it."""
    return 3 * settings.slack_timeout_seconds


@cache
def notifier(channel: str) -> Notifier:
    """This process's notifier of a channel, made once."""
    return build(channel, context())


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Connect every channel when a worker child starts, not on its first alert (an engine away: on first use)."""
    for channel in channel_names(get_settings()):
        try:
            notifier(channel)
        except Exception as error:
            Outage(f"the {channel} channel", logger).failed(error)


def enqueue(redis: Redis, settings: Settings, channel: str, event: dict[str, Any]) -> None:
    """Queue the delivery of one alert event on one channel, with its backstop in Redis."""
    queue = settings.alerts_queue
    later.send_later(redis, DELIVER, channel, event, 0, queue=queue, at=time.time() + QUEUED_BACKSTOP_SECONDS)
    send(settings, DELIVER, channel, event, 0, queue=queue)


@app.task(name=DELIVER, soft_time_limit=60, time_limit=90)
def deliver(channel: str, event: dict[str, Any], attempt: int = 0) -> str:
    """Send one alert on one channel, at most once per channel as far as we can tell; returns what happened."""
    ctx = context()
    redis, settings, now = ctx.redis, ctx.settings, time.time()
    alert = AlertEvent.model_validate(event)
    delivered = keys.delivered(channel, alert.id)
    lease = lease_seconds(settings)
    if not redis.set(delivered, "sending", nx=True, ex=lease):
        if redis.get(delivered) == b"sent":
            later.cancel(redis, DELIVER, channel, event, attempt, queue=settings.alerts_queue)
            _count(redis, channel, "duplicate")
            return "duplicate"
        # Another copy is sending now, or died sending: come back when its claim has expired.
        _retry(redis, settings, channel, event, attempt, at=now + max(redis.ttl(delivered), 1))
        return "waiting"
    gate = _gate(redis, settings, channel, now)
    if not gate.go:
        redis.delete(delivered)
        _retry(redis, settings, channel, event, attempt, at=(gate.until or now) + random.uniform(0, 1))
        return "waiting"
    later.send_later(redis, DELIVER, channel, event, attempt, queue=settings.alerts_queue, at=now + lease)
    try:
        notifier(channel).send(alert)
    except Exception as error:
        later.cancel(redis, DELIVER, channel, event, attempt, queue=settings.alerts_queue)
        redis.delete(delivered)
        return _failed(redis, settings, channel, event, attempt, error, probe=gate.probe)
    later.cancel(redis, DELIVER, channel, event, attempt, queue=settings.alerts_queue)
    if channel == "slack":
        _slack_answered(redis, settings, ok=True)
    _sent(redis, channel, alert)
    return "sent"


def _gate(redis: Redis, settings: Settings, channel: str, now: float) -> circuit.Gate:
    if channel != "slack":
        return circuit.Gate(go=True)
    return circuit.gate(
        circuit.allow(
            redis, "slack", now=now, cooloff=settings.slack_circuit_cooloff_seconds, probe_lease=lease_seconds(settings)
        )
    )


def _failed(
    redis: Redis,
    settings: Settings,
    channel: str,
    event: dict[str, Any],
    attempt: int,
    error: Exception,
    *,
    probe: bool,
) -> str:
    """A delivery that failed: told once and dropped when no retry can fix it, else scheduled again."""
    verdict = (
        slack_errors.classify(error) if channel == "slack" else slack_errors.Verdict("retry", type(error).__name__)
    )
    if verdict.kind == "permanent":
        slack_errors.note_problem(redis, verdict.code, settings.slack_channel)
        _count(redis, channel, "failed")
        return "refused"
    delay = min(RETRY_CAP_SECONDS, 2.0**attempt) * random.uniform(0.8, 1.2)
    if channel == "slack":
        # Slack's circuit, not each delivery's backoff, keeps a failing Slack from being hammered (after a few
        # failures every delivery waits for its probe), so a delivery comes back within one cool-off: a call
        # that failed just as Slack recovered (it was slow to answer) goes out seconds later, not 10 s later.
        _slack_answered(redis, settings, ok=False)
        delay = min(delay, settings.slack_circuit_cooloff_seconds * random.uniform(1, 1.2))
    counted = attempt if probe else attempt + 1  # a failed probe tells about Slack, not about this alert
    if counted > settings.delivery_max_retries:
        logger.error(
            "alert %s on %s: giving up after %d attempts (%s)",
            event["id"],
            channel,
            attempt + 1,
            verdict.code,
            extra=logs.fields(event_id=event["id"], anomaly_id=event["data"]["id"], symbol=event["data"]["symbol"]),
        )
        _count(redis, channel, "failed")
        return "gave up"
    if verdict.retry_after is not None:
        delay = max(delay, verdict.retry_after)
    _retry(redis, settings, channel, event, counted, at=time.time() + delay)
    _count(redis, channel, "retrying")
    return "retrying"


def _retry(redis: Redis, settings: Settings, channel: str, event: dict[str, Any], attempt: int, *, at: float) -> None:
    later.send_later(redis, DELIVER, channel, event, attempt, queue=settings.alerts_queue, at=at)


def _slack_answered(redis: Redis, settings: Settings, *, ok: bool) -> None:
    """Move Slack's circuit with a call's outcome (and tell operators when it opens or closes)."""
    answer = circuit.record(redis, "slack", ok=ok, now=time.time(), threshold=settings.slack_circuit_failures)
    change = circuit.change(answer)
    if change == "opened":
        logger.warning(
            "Slack is failing: alerts wait (no calls) until a probe every %gs succeeds",
            settings.slack_circuit_cooloff_seconds,
        )
    elif change == "closed":
        # Deliveries that backed off before the circuit opened go now too, not when their backoff ends.
        later.hurry(redis, DELIVER, "slack", now=time.time())
        logger.warning("Slack answers again: waiting alerts go out")
    if ok:
        slack_errors.clear_problems(redis)


def _count(redis: Redis, channel: str, outcome: str) -> None:
    figures = Recorder()
    figures.count("deliveries", channel=channel, outcome=outcome)
    figures.send(redis)


def _sent(redis: Redis, channel: str, alert: AlertEvent) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.set(keys.delivered(channel, alert.id), "sent", ex=DELIVERED_TTL_SECONDS)
    figures = Recorder()
    figures.count("deliveries", channel=channel, outcome="sent")
    if alert.data.published_at is not None and alert.type == "anomaly.detected":
        latency_ms = (datetime.now(UTC) - alert.data.published_at).total_seconds() * 1000
        figures.observe("delivery_latency_seconds", latency_ms / 1000, channel=channel)
        pipe.lpush(keys.delivery_latencies(channel), round(latency_ms, 1))
        pipe.ltrim(keys.delivery_latencies(channel), 0, LATENCY_SAMPLES - 1)
    figures.add_to(pipe)
    pipe.execute()


@app.task(name=SLACK_REFRESH, soft_time_limit=60, time_limit=90)
def slack_refresh(kind: Kind, key: str, attempt: int = 0) -> str:
    """Edit an alert's (or a storm's) Slack message with its newest state: the follow-up of a throttled change."""
    ctx = context()
    redis, settings, now = ctx.redis, ctx.settings, time.time()
    slack = notifier("slack")
    assert isinstance(slack, SlackChannel), "slack_refresh runs only where Slack is configured"
    gate = _gate(redis, settings, "slack", now)
    if not gate.go:
        later.send_later(redis, SLACK_REFRESH, kind, key, attempt, queue=settings.alerts_queue, at=gate.until or now)
        return "waiting"
    try:
        slack.messages.refresh(kind, key)
    except Exception as error:
        if slack_errors.classify(error).kind == "permanent" or attempt >= settings.delivery_max_retries:
            return "dropped"  # the next change of this message renders its newest state anyway
        _slack_answered(redis, settings, ok=False)
        at = now + min(RETRY_CAP_SECONDS, 2.0**attempt)
        later.send_later(redis, SLACK_REFRESH, kind, key, attempt + 1, queue=settings.alerts_queue, at=at)
        return "retrying"
    _slack_answered(redis, settings, ok=True)
    return "edited"
