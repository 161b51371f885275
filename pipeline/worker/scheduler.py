"""The clock of the alerts workers: a thread that queues delayed tasks and webhook retries when they are due.

Every worker consuming the alerts queue runs one (Celery bootstep); entries are taken atomically, so any number
of them together queue each entry once, and a worker killed at any moment loses nothing (the entries live in
Redis). Redis away: one log line, then the scheduler waits for it (pipeline.outage).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps

from pipeline.alerting import dms, reminders
from pipeline.feeds import watch
from pipeline.outage import Outage
from pipeline.webhooks import delivery_log
from pipeline.worker import later
from pipeline.worker.app import app, context

logger = logging.getLogger(__name__)
INTERVAL_SECONDS = 0.2


def start_due(now: float) -> int:
    """Queue every delayed task and webhook delivery due by `now`, and run the feed check and the mute reminders
    when their interval's is not taken yet (pipeline.feeds.watch, pipeline.alerting.reminders), and the catch-up
    DMs of quiet hours that ended (pipeline.alerting.dms); returns how many
    tasks were queued."""
    ctx = context()
    at = datetime.fromtimestamp(now, UTC)
    watch.check_if_due(ctx, at)
    reminders.check_if_due(ctx, at)
    dms.catch_up_if_due(ctx, at)
    return later.start_due(ctx.redis, ctx.settings, now) + delivery_log.start_due(ctx.redis, ctx.settings, now)


class Scheduler(bootsteps.StartStopStep):
    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.enabled = context().settings.alerts_queue in worker.app.amqp.queues.consume_from
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
            self._thread.start()

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        redis = Outage(f"Redis at {context().settings.redis_url}", logger)
        wait = INTERVAL_SECONDS
        while not self._stop.wait(wait):
            try:
                start_due(time.time())
            except Exception as error:
                wait = redis.failed(error)
                continue
            redis.ok()
            wait = INTERVAL_SECONDS


app.steps["worker"].add(Scheduler)
