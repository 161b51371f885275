"""The one Celery app: its configuration, the names of every task, and each worker process's context.

Every task is sent by the name below (`app.send_task(NAME, …)`), so a sender never imports the module that
defines the task, and this module imports no wing: the task modules (`include`) import it, never the reverse.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from typing import Any

import orjson
from celery import Celery
from celery.signals import setup_logging
from kombu import serialization

from pipeline import logs
from pipeline.context import Context
from pipeline.settings import Settings, get_settings

PROCESS_BATCH = "tickwatch.process_batch"  # pipeline.worker.batches: detect, store, hand alerts on
STORE_TICKS = "tickwatch.store_ticks"  # pipeline.worker.batches: index a batch's ticks
DELIVER = "tickwatch.deliver"  # pipeline.alerting.tasks: one alert event on one channel
SLACK_REFRESH = "tickwatch.slack_refresh"  # pipeline.alerting.tasks: edit a throttled Slack message
DELIVER_WEBHOOK = "tickwatch.deliver_webhook"  # pipeline.webhooks.delivery: webhook deliveries, side by side
FEED_EVENT = "tickwatch.feed_event"  # pipeline.feeds.tasks: one feed.stale or feed.recovered, every channel
FEED_OUTAGE = "tickwatch.feed_outage"  # pipeline.feeds.tasks: a calendar's "feed down" Slack message
DELIVER_DM = "tickwatch.deliver_dm"  # pipeline.alerting.dms: a personal watch alert's DM (post or edit)
MUTE_REMINDER = "tickwatch.mute_reminder"  # pipeline.alerting.reminders: DM a long mute's author before it ends

TASK_MODULES = [
    "pipeline.worker.batches",
    "pipeline.alerting.tasks",
    "pipeline.webhooks.delivery",
    "pipeline.feeds.tasks",
    "pipeline.alerting.reminders",
    "pipeline.alerting.dms",
    "pipeline.worker.scheduler",  # the alerts workers' clock: delayed tasks and webhook retries
]
VISIBILITY_TIMEOUT_SECONDS = 300

# Task messages carry whole batches: orjson encodes them ~10x and decodes them ~5x faster than kombu's json.
serialization.register("orjson", lambda body: orjson.dumps(body, default=_tuple), orjson.loads, "application/x-orjson")


def _tuple(value: object) -> tuple[object, ...]:
    """Rows travel as JSON arrays (orjson does not encode NamedTuples itself)."""
    if isinstance(value, tuple):
        return tuple(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def celery_config(settings: Settings) -> dict[str, Any]:
    ticks, alerts = settings.celery_queue, settings.alerts_queue
    return dict(
        broker_url=settings.redis_url,
        task_serializer="orjson",
        accept_content=["orjson", "json"],  # json: tasks queued by an older bridge
        task_ignore_result=True,
        task_acks_late=True,  # a task is acknowledged after it ran, so a dying worker loses nothing
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a reserved batch must not sit behind a busy child
        # Longer than any retry countdown (deliveries back off up to 240 s), so Redis never hands a waiting
        # task to a second worker.
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out Redis however long it is away
        # Every task ends well before the visibility timeout (each also sets its own, lower, limits): a task
        # running past it would be handed to a second worker. The threads pool cannot enforce them; there each
        # call has its own deadline (Slack 10 s, webhooks TICKWATCH_WEBHOOK_TIMEOUT_SECONDS).
        task_soft_time_limit=VISIBILITY_TIMEOUT_SECONDS - 100,
        task_time_limit=VISIBILITY_TIMEOUT_SECONDS - 60,
        task_default_queue=ticks,
        include=TASK_MODULES,
        task_routes={
            PROCESS_BATCH: {"queue": ticks},
            STORE_TICKS: {"queue": ticks},
            DELIVER: {"queue": alerts},
            DELIVER_WEBHOOK: {"queue": alerts},
            SLACK_REFRESH: {"queue": alerts},
            FEED_EVENT: {"queue": alerts},
            FEED_OUTAGE: {"queue": alerts},
            MUTE_REMINDER: {"queue": alerts},
        },
    )


def make_app(settings: Settings) -> Celery:
    app = Celery("tickwatch")
    app.conf.update(celery_config(settings))
    return app


# This process's app, configured from its settings when first used (not at import: a module that only sends
# tasks, or explains a bad setting, must import without valid settings). add_defaults takes a promise.
app = Celery("tickwatch")
app.add_defaults(lambda: celery_config(get_settings()))


@lru_cache
def sender(redis_url: str) -> Celery:
    """An app that queues tasks on another deployment's broker (a test's or the bench's Redis database)."""
    return make_app(get_settings().model_copy(update={"redis_url": redis_url}))


def app_for(settings: Settings) -> Celery:
    """The app to send `settings`' tasks with: this process's, or one for the broker those settings name."""
    return app if settings.redis_url == get_settings().redis_url else sender(settings.redis_url)


@cache
def context() -> Context:
    """This worker process's clients, made on first use (after the fork)."""
    return Context(get_settings())


def send(settings: Settings, name: str, *args: Any, queue: str, countdown: float | None = None) -> None:
    """Queue task `name` with `args` on `queue` of `settings`' broker."""
    app_for(settings).send_task(name, args=args, queue=queue, countdown=countdown)


@setup_logging.connect
def _log_as_tickwatch(loglevel: int | str | None = None, **_: Any) -> None:
    """A worker logs as every Tickwatch process does (pipeline.logs: text or JSON), not in Celery's format."""
    logs.configure(get_settings(), logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel)
