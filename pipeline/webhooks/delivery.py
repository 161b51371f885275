"""Webhook delivery per the Standard Webhooks spec, by Celery tasks on the alerts queue.

Each attempt re-checks the URL with the SSRF guard and connects to the address it checked; signs the
stored body with every current secret (`webhook-signature: v1,<new> v1,<old>` during a rotation); waits at
most TICKWATCH_WEBHOOK_TIMEOUT_SECONDS (3 s to connect), and reads no more of an answer than its status,
headers and a little of its body; never follows redirects. 2xx is success; 410
disables the endpoint; anything else is retried on TICKWATCH_WEBHOOK_RETRY_SCHEDULE with ±10 % jitter,
never sooner than a `Retry-After` asks. An endpoint failing without a success for
TICKWATCH_WEBHOOK_DISABLE_AFTER_SECONDS is disabled, with a notice to Slack.

A task carries up to 10 deliveries (an event's, to different subscriptions) and runs them side by side in
the worker process's delivery threads: a Celery task costs more CPU than a delivery, and at 100
subscribers that decides the latency. Isolation does not rest on tasks: every delivery has its own timeout,
and a subscription has one request in flight at a time (pipeline.delivery_log's slot), so a dead or slow
endpoint holds one delivery thread for at most the timeout, whatever its backlog; its other deliveries wait
in Redis, not in threads. Retries are not Celery countdowns (those sit in a worker's memory and come back
twice once they outlast the broker's visibility timeout): they wait in a Redis sorted set, and every alerts
worker runs a small scheduler thread that queues them when due.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from celery import Task, bootsteps
from redis import Redis
from standardwebhooks.webhooks import Webhook

from pipeline.alerting.messages import webhook_disabled_text
from pipeline.context import slack_client
from pipeline.durations import format_duration
from pipeline.metrics import Recorder
from pipeline.settings import Settings
from pipeline.webhooks import delivery_log, ssrf, subscriptions
from pipeline.webhooks.delivery_log import Attempt, DeliveryRecord, Job
from pipeline.worker.app import DELIVER_WEBHOOK, app, context

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0
JITTER = 0.1
SCHEDULER_INTERVAL_SECONDS = 0.2
CLIENTS_KEPT = 512
BODY_READ_BYTES = 64 * 1024
DELIVERY_THREADS = 16  # per worker process: requests in flight at once (each endpoint has at most one)


# --- policy (pure) ----------------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) as seconds from `now`; None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_delay(
    attempts_made: int, schedule: Sequence[float], retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts failed, or None when the schedule is
    spent. Jittered by ±10 %; never sooner than `retry_after`, which is capped at the schedule's longest step."""
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made] * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def signature_header(message_id: str, body: str, secrets: Sequence[str], at: datetime) -> str:
    """`v1,<sig>` per secret, space-separated (Standard Webhooks): any one of them verifies."""
    return " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)


def webhook_headers(message_id: str, body: str, secrets: Sequence[str], at: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "Tickwatch-Webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(message_id, body, secrets, at),
    }


# --- sending ----------------------------------------------------------------------------------------------


class Clients:
    """httpx clients per (subscription, URL), so a connection only ever carries one endpoint's requests; they
    share one TLS context (building one costs milliseconds). Thread-safe; the oldest are closed past a bound."""

    def __init__(self) -> None:
        self._clients: OrderedDict[tuple[str, str], httpx.Client] = OrderedDict()
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context()

    def get(self, subscription_id: str, url: str, timeout: float) -> httpx.Client:
        key = (subscription_id, url)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout)),
                    follow_redirects=False,
                    trust_env=False,
                    verify=self._tls,  # no proxies: they would resolve
                    limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
                )
                self._clients[key] = client
                while len(self._clients) > CLIENTS_KEPT:
                    self._clients.popitem(last=False)[1].close()
            self._clients.move_to_end(key)
            return client


_clients = Clients()
_threads = ThreadPoolExecutor(max_workers=DELIVERY_THREADS, thread_name_prefix="webhook")


def send(
    settings: Settings, stored: subscriptions.StoredSubscription, record: DeliveryRecord, now: datetime
) -> tuple[Attempt, float | None]:
    """One attempt; returns what happened and the Retry-After it asked for. Never raises for the endpoint's
    faults: a refused address, a timeout or a status are all recorded as the attempt's outcome."""
    try:
        target = ssrf.check(stored.url, settings.webhook_allow_networks)
    except ssrf.UnsafeURL as error:
        return Attempt(at=now, error=f"not sent: {error}"), None
    secrets = subscriptions.signing_secrets(settings, stored, now)
    headers = {**webhook_headers(record.event_id, record.body, secrets, now), **target.headers()}
    client = _clients.get(stored.id, stored.url, settings.webhook_timeout_seconds)
    started = time.perf_counter()
    try:
        with client.stream(
            "POST", target.request_url(), content=record.body.encode(), headers=headers, extensions=target.extensions()
        ) as response:
            _skim(response, started + settings.webhook_timeout_seconds)
    except httpx.TimeoutException as error:
        return Attempt(at=now, latency_ms=_ms(started), error=f"timed out ({type(error).__name__})"), None
    except httpx.HTTPError as error:
        return Attempt(at=now, latency_ms=_ms(started), error=f"{type(error).__name__}: {error}"), None
    code = response.status_code
    refusal = (
        None
        if 200 <= code < 300
        else f"HTTP {code}"
        + (f" to {response.headers.get('location')} (redirects are not followed)" if 300 <= code < 400 else "")
    )
    return (
        Attempt(at=now, response_code=code, latency_ms=_ms(started), error=refusal),
        retry_after_seconds(response.headers.get("retry-after"), now),
    )


def _skim(response: httpx.Response, deadline: float) -> None:
    """Read at most BODY_READ_BYTES of the answer's body, until `deadline`: nothing in it matters, but a small
    body read to its end lets the connection serve the next delivery. An endless or dripping body is cut
    off (the connection is then closed), so it holds a delivery thread no longer than the timeout."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > BODY_READ_BYTES or time.perf_counter() > deadline:
            return


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- the task ---------------------------------------------------------------------------------------------


@app.task(bind=True, name=DELIVER_WEBHOOK, ignore_result=True, max_retries=20)
def deliver_webhook(self: Task, jobs: list[list[Any]]) -> dict[str, int]:
    """Attempt deliveries side by side in this process's delivery threads (each job is one delivery to one
    subscription, with its own timeout and slot, so a hanging endpoint holds one thread, not the others).
    Jobs that hit an error of ours (e.g. Redis away) are retried as a task of their own."""
    ctx = context()
    futures = [
        (_threads.submit(run, ctx.redis, ctx.settings, (delivery, int(seq))), [delivery, seq]) for delivery, seq in jobs
    ]
    outcomes: Counter[str] = Counter()
    broken = []
    for future, job in futures:
        try:
            outcomes[future.result()] += 1
        except Exception:
            logger.exception("webhook delivery %s", job[0])
            broken.append(job)
    if broken:
        raise self.retry(args=(broken,), countdown=min(60, 2**self.request.retries))
    return dict(outcomes)


def run(redis: Redis, settings: Settings, job: Job) -> str:
    """Make the attempt `job` stands for, if it is still due; returns what happened (for logs and tests).

    Three Redis round trips on the way of a delivery: read its record; read the subscription and take its
    slot (re-checking the record atomically: a duplicate task finds it moved on); write the outcome, the
    retry and the figures while freeing the slot for the next waiting delivery.
    """
    record = delivery_log.load(redis, job[0])
    if record is None or record.seq != job[1] or record.status != "pending":
        return "stale"
    subscription_id = record.subscription_id
    pipe = redis.pipeline(transaction=False)
    pipe.hget(subscriptions.SUBSCRIPTIONS, subscription_id)
    delivery_log.acquire(pipe, subscription_id, job, hold_seconds=settings.webhook_timeout_seconds + 10)
    raw, result = pipe.execute()
    current = delivery_log.acquired(result)
    if isinstance(current, str):
        return current
    try:
        outcome, waiting = _attempt(redis, settings, raw, current)
    except BaseException:
        _start(settings, delivery_log.waiter(delivery_log.release(redis, subscription_id, job)))
        raise
    _start(settings, waiting)
    return outcome


def _start(settings: Settings, job: Job | None) -> None:
    if job is not None:
        delivery_log.enqueue(settings, [job])


def _attempt(redis: Redis, settings: Settings, raw: bytes | None, record: DeliveryRecord) -> tuple[str, Job | None]:
    """Send (unless the subscription is gone or disabled) and settle; returns the outcome and the next job."""
    now = datetime.now(UTC)
    if raw is None:  # deleted meanwhile (its log went with it)
        return "gone", delivery_log.waiter(delivery_log.release(redis, record.subscription_id, record.job))
    stored = subscriptions.StoredSubscription.model_validate_json(raw)
    if not stored.enabled:
        refused = Attempt(at=now, error=f"not sent: endpoint disabled ({stored.disabled_reason})")
        return "disabled", _settle(redis, record, refused, "failed", counted=False)
    attempt, retry_after = send(settings, stored, record, now)
    code = attempt.response_code
    if code is not None and 200 <= code < 300:
        return "succeeded", _settle(redis, record, attempt, "succeeded")
    disable_for = "the endpoint answered 410 Gone" if code == 410 else None
    failing = subscriptions.failing_for(redis, stored.id, now)
    if disable_for is None and failing >= settings.webhook_disable_after_seconds:
        disable_for = f"failing for {format_duration(failing)} without a success"
    delay = None if disable_for else next_delay(record.step + 1, settings.webhook_retry_schedule, retry_after)
    if delay is None:
        waiting = _settle(redis, record, attempt, "failed")
        if disable_for:
            _disable(redis, settings, stored, disable_for)
        return "failed", waiting
    return "retrying", _settle(redis, record, attempt, "pending", retry_at=now + timedelta(seconds=delay))


def _settle(
    redis: Redis,
    record: DeliveryRecord,
    attempt: Attempt,
    status: delivery_log.Status,
    *,
    retry_at: datetime | None = None,
    counted: bool = True,
) -> Job | None:
    """In one round trip: record the attempt (`counted`: one was made) and the new status, schedule the
    retry (its job carries the next seq), count the outcome, free the slot. Returns the job to start next."""
    made = int(counted)
    updated = record.model_copy(
        update={
            "status": status,
            "attempts": record.attempts + made,
            "step": record.step + made,
            "seq": record.seq + (retry_at is not None),
            "next_attempt_at": retry_at,
            "response_code": attempt.response_code,
            "latency_ms": attempt.latency_ms,
            "error": attempt.error,
            "last_attempt_at": attempt.at,
            "history": [*record.history, attempt][-delivery_log.HISTORY_KEPT :],
        }
    )
    figures = Recorder()
    figures.count("deliveries", channel="webhook", outcome="retrying" if retry_at else status)
    published = _published_at(record) if status == "succeeded" else None
    if published is not None:
        figures.observe("delivery_latency_seconds", (datetime.now(UTC) - published).total_seconds(), channel="webhook")
    pipe = redis.pipeline(transaction=False)
    delivery_log.save(pipe, updated)
    if retry_at is not None:
        delivery_log.schedule(pipe, updated.job, retry_at)  # after the save: the job must find its seq stored
    if status == "succeeded":
        subscriptions.note_success(pipe, record.subscription_id)
    figures.add_to(pipe)
    delivery_log.release(pipe, record.subscription_id, record.job)
    return delivery_log.waiter(pipe.execute()[-1])


def _published_at(record: DeliveryRecord) -> datetime | None:
    """When the alert's crossing tick reached Kafka, for the delivery latency figure (alerts only)."""
    if record.event_type != "anomaly.detected":
        return None
    try:
        data = json.loads(record.body)["data"]
        return datetime.fromisoformat(data["published_at"]) if data.get("published_at") else None
    except (ValueError, KeyError, TypeError):
        return None


def _disable(redis: Redis, settings: Settings, stored: subscriptions.StoredSubscription, reason: str) -> None:
    if not subscriptions.disable(redis, stored.id, reason):
        return
    logger.warning("webhook %s (%s) disabled: %s", stored.id, stored.url, reason)
    if settings.slack_bot_token:
        try:
            slack_client(settings).chat_postMessage(
                channel=settings.slack_channel,
                unfurl_links=False,
                text=webhook_disabled_text(stored.url, stored.id, reason),
            )
        except Exception:  # the notice is a courtesy: the endpoint is disabled either way
            logger.exception("could not post the webhook-disabled notice to Slack")


# --- the retry scheduler ----------------------------------------------------------------------------------


def start_due(redis: Redis, settings: Settings, now: datetime | None = None) -> int:
    """Queue the deliveries whose retry (or wait) is over; returns how many."""
    jobs = delivery_log.take_due(redis, now or datetime.now(UTC))
    if jobs:
        delivery_log.enqueue(settings, jobs)
    return len(jobs)


class RetryScheduler(bootsteps.StartStopStep):
    """A thread in every worker that consumes the alerts queue, starting due retries every 0.2 s."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.enabled = context().settings.alerts_queue in worker.app.amqp.queues.consume_from
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker: Any) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._loop, name="webhook-retries", daemon=True)
            self._thread.start()

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        ctx = context()
        while not self._stop.wait(SCHEDULER_INTERVAL_SECONDS):
            try:
                start_due(ctx.redis, ctx.settings)
            except Exception:  # Redis away for a moment: try again next tick
                logger.exception("webhook retry scheduler")


app.steps["worker"].add(RetryScheduler)
