"""Webhook delivery per the Standard Webhooks spec, by Celery tasks on the alerts queue.

Each attempt re-checks the URL with the SSRF guard and connects to the address it checked; signs the
stored body with every current secret (`webhook-signature: v1,<new> v1,<old>` during a rotation); waits at
most TICKWATCH_WEBHOOK_TIMEOUT_SECONDS (3 s to connect), and reads no more of an answer than its status,
headers and a little of its body; never follows redirects. 2xx is success; 410
disables the endpoint; anything else is retried on TICKWATCH_WEBHOOK_RETRY_SCHEDULE with ±10 % jitter,
never sooner than a `Retry-After` asks. An endpoint failing without a success for
TICKWATCH_WEBHOOK_DISABLE_AFTER_SECONDS is disabled, with a notice to Slack.

Nothing an endpoint does may slow another or the task queue:
- a task carries up to 10 deliveries and hands them to the process's delivery loop (asyncio), then returns: it
  never waits for an endpoint, so Celery threads stay free however many endpoints hang;
- one wall-clock deadline bounds a whole attempt (connect, headers, body), enforced even against a peer that
  trickles its answer a byte at a time;
- a subscription has one request in flight at a time (pipeline.webhooks.delivery_log's slot, held at least as
  long as the deadline), and a circuit breaker per subscription (pipeline.circuit) stops attempts to an
  endpoint failing again and again: its deliveries wait on their schedule and one probe per cool-off tests it;
- before an attempt starts, its own re-run is scheduled in Redis (a lease) and moved or removed when it ends,
  so a worker killed mid-attempt loses nothing: retries and leases wait in a Redis sorted set, not in a
  worker's memory, and pipeline.worker.scheduler queues them when due.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from celery.signals import worker_process_init
from redis import Redis
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook

from pipeline import circuit, logs
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
CLIENTS_KEPT = 512
BODY_READ_BYTES = 64 * 1024
IN_FLIGHT = 512  # attempts one worker process makes at once (each endpoint has at most one)
REDIS_THREADS = 16
SLOT_MARGIN_SECONDS = 10  # the slot and the lease outlast an attempt's deadline by this much
T = TypeVar("T")


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


class DeliveryLoop:
    """The worker process's asyncio loop, in a thread of its own: every attempt waits there, so an endpoint that
    hangs costs a suspended coroutine, not a thread. Started on first use (after the worker's fork)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.clients: OrderedDict[tuple[str, str], httpx.AsyncClient] = OrderedDict()
        self.tls = ssl.create_default_context()
        self.in_flight: asyncio.Semaphore | None = None
        self._closing: set[asyncio.Task[None]] = set()  # old clients closing (kept so they are not collected)

    def submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                # Redis round trips run here, side by side (their waits release the GIL): the loop never blocks.
                self._loop.set_default_executor(ThreadPoolExecutor(REDIS_THREADS, thread_name_prefix="webhook-redis"))
                threading.Thread(target=self._loop.run_forever, name="webhooks", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    def client(self, subscription_id: str, url: str) -> httpx.AsyncClient:
        """One client per (subscription, URL), so a connection only ever carries one endpoint's requests; no
        proxies from the environment (they would resolve the name again), redirects never followed."""
        key = (subscription_id, url)
        client = self.clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_SECONDS),  # the attempt's deadline bounds the rest
                follow_redirects=False,
                trust_env=False,
                verify=self.tls,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            )
            self.clients[key] = client
            while len(self.clients) > CLIENTS_KEPT:
                closing = asyncio.ensure_future(self.clients.popitem(last=False)[1].aclose())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        self.clients.move_to_end(key)
        return client


loop = DeliveryLoop()


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Start the delivery loop, its Redis threads and a client per subscription when a worker starts, not on
    the first alert (Redis away: on first use)."""
    try:
        stored = subscriptions.list_all(context().redis)
    except RedisError:
        return
    loop.submit(_clients_for([(sub.id, sub.url) for sub in stored])).result()


async def _clients_for(endpoints: list[tuple[str, str]]) -> None:
    await asyncio.gather(*(asyncio.to_thread(time.sleep, 0) for _ in range(REDIS_THREADS)))
    for subscription_id, url in endpoints:
        loop.client(subscription_id, url)


async def send(
    settings: Settings, stored: subscriptions.StoredSubscription, record: DeliveryRecord, now: datetime
) -> tuple[Attempt, float | None]:
    """One attempt, within one wall-clock deadline; returns what happened and the Retry-After it asked for.
    Never raises for the endpoint's faults: a refused address, a timeout or a status are the attempt's outcome."""
    deadline = settings.webhook_timeout_seconds
    try:
        target = await asyncio.to_thread(ssrf.check, stored.url, settings.webhook_allow_networks)
    except ssrf.UnsafeURL as error:
        return Attempt(at=now, error=f"not sent: {error}"), None
    secrets = subscriptions.signing_secrets(settings, stored, now)
    headers = {**webhook_headers(record.event_id, record.body, secrets, now), **target.headers()}
    client = loop.client(stored.id, stored.url)
    started = time.perf_counter()
    request = client.build_request(
        "POST", target.request_url(), content=record.body.encode(), headers=headers, extensions=target.extensions()
    )
    ends = asyncio.get_running_loop().time() + deadline
    try:
        async with asyncio.timeout_at(ends):
            response = await client.send(request, stream=True)
        try:
            async with asyncio.timeout_at(ends):  # the answer counts once its status is in; its body may be cut
                await _skim(response)
        except TimeoutError:
            pass
        finally:
            await response.aclose()
    except TimeoutError:
        return Attempt(
            at=now, latency_ms=_ms(started), error=f"timed out: no complete answer within {deadline:g}s"
        ), None
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


async def _skim(response: httpx.Response) -> None:
    """Read at most BODY_READ_BYTES of the answer's body (nothing in it matters, but a small body read to its end
    lets the connection serve the next delivery); the attempt's deadline cuts off an endless or dripping one."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > BODY_READ_BYTES:
            return


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- the task ---------------------------------------------------------------------------------------------


def hold_seconds(settings: Settings) -> float:
    """How long an attempt may keep its endpoint's slot and lease: longer than its deadline."""
    return settings.webhook_timeout_seconds + SLOT_MARGIN_SECONDS


@app.task(name=DELIVER_WEBHOOK, ignore_result=True, soft_time_limit=60, time_limit=90)
def deliver_webhook(jobs: list[list[Any]]) -> int:
    """Hand deliveries to this process's delivery loop and return: each job is one delivery to one subscription,
    with its own deadline, slot and circuit, and its lease (scheduled here, before the task is acknowledged)
    starts it again should this worker die before it ends."""
    ctx = context()
    started = [(str(delivery), int(seq)) for delivery, seq in jobs]
    delivery_log.lease(ctx.redis, started, seconds=hold_seconds(ctx.settings))
    for job in started:
        loop.submit(_run_logged(ctx.redis, ctx.settings, job))
    return len(started)


async def _run_logged(redis: Redis, settings: Settings, job: Job) -> str:
    try:
        async with _in_flight():
            return await attempt_job(redis, settings, job)
    except Exception:  # an error of ours (e.g. Redis away): the lease starts the job again
        logger.exception("webhook delivery %s", job[0], extra=logs.fields(delivery_id=job[0]))
        return "error"


def _in_flight() -> asyncio.Semaphore:
    if loop.in_flight is None:
        loop.in_flight = asyncio.Semaphore(IN_FLIGHT)
    return loop.in_flight


def run(redis: Redis, settings: Settings, job: Job) -> str:
    """Make the attempt `job` stands for now, on the delivery loop, and wait for what happened (tools, tests)."""
    return loop.submit(attempt_job(redis, settings, job)).result()


async def attempt_job(redis: Redis, settings: Settings, job: Job) -> str:
    """Make the attempt `job` stands for, if it is still due; returns what happened (for logs and tests).

    Three Redis round trips on the way of a delivery, in the loop's Redis threads: read its record; read the
    subscription, take its slot (re-checking the record atomically: a duplicate task finds it moved on) and ask
    its circuit; write the outcome, the retry, the circuit's count and the figures while freeing the slot for
    the next waiting one.
    """
    taken = await asyncio.to_thread(_take, redis, settings, job)
    if isinstance(taken, str):
        return taken
    raw, record, gate = taken
    try:
        outcome, waiting = await _attempt(redis, settings, raw, record, gate)
    except BaseException:
        released = await asyncio.to_thread(delivery_log.release, redis, record.subscription_id, job)
        await asyncio.to_thread(_start, settings, delivery_log.waiter(released))
        raise
    await asyncio.to_thread(_start, settings, waiting)
    return outcome


def _take(redis: Redis, settings: Settings, job: Job) -> str | tuple[bytes | None, DeliveryRecord, circuit.Gate]:
    """The job's record, its subscription and its circuit's answer, with the slot taken; or why not."""
    record = delivery_log.load(redis, job[0])
    if record is None or record.seq != job[1] or record.status != "pending":
        delivery_log.unlease(redis, job)
        return "stale"
    pipe = redis.pipeline(transaction=False)
    pipe.hget(subscriptions.SUBSCRIPTIONS, record.subscription_id)
    delivery_log.acquire(pipe, record.subscription_id, job, hold_seconds=hold_seconds(settings))
    circuit.allow(
        pipe,
        subscriptions.circuit_name(record.subscription_id),
        now=time.time(),
        cooloff=settings.webhook_circuit_cooloff_seconds,
        probe_lease=hold_seconds(settings),
    )
    raw, result, answer = pipe.execute()
    current = delivery_log.acquired(result)
    if isinstance(current, str):
        if current == "stale":
            delivery_log.unlease(redis, job)
        return current
    return raw, current, circuit.gate(answer)


def _start(settings: Settings, job: Job | None) -> None:
    if job is not None:
        delivery_log.enqueue(settings, [job])


async def _attempt(
    redis: Redis, settings: Settings, raw: bytes | None, record: DeliveryRecord, gate: circuit.Gate
) -> tuple[str, Job | None]:
    """Send (unless the subscription is gone or disabled, or its circuit is open) and settle; returns the outcome
    and the next job."""
    now = datetime.now(UTC)
    if raw is None:  # deleted meanwhile (its log went with it)
        released = await asyncio.to_thread(delivery_log.release, redis, record.subscription_id, record.job)
        return "gone", delivery_log.waiter(released)
    stored = subscriptions.StoredSubscription.model_validate_json(raw)
    if not stored.enabled:
        refused = Attempt(at=now, error=f"not sent: endpoint disabled ({stored.disabled_reason})")
        return "disabled", await asyncio.to_thread(_settle, redis, settings, record, refused, "failed", counted=False)
    if not gate.go:
        waits = datetime.fromtimestamp((gate.until or now.timestamp()) + random.uniform(0, 1), UTC)
        return "circuit open", await asyncio.to_thread(
            _settle, redis, settings, record, None, "pending", retry_at=waits
        )
    attempt, retry_after = await send(settings, stored, record, now)
    return await asyncio.to_thread(_conclude, redis, settings, stored, record, attempt, retry_after, now)


def _conclude(
    redis: Redis,
    settings: Settings,
    stored: subscriptions.StoredSubscription,
    record: DeliveryRecord,
    attempt: Attempt,
    retry_after: float | None,
    now: datetime,
) -> tuple[str, Job | None]:
    """Settle an attempt that was made: success, retry, failure or a disabled endpoint; moves the circuit."""
    code = attempt.response_code
    if code is not None and 200 <= code < 300:
        return "succeeded", _settle(redis, settings, record, attempt, "succeeded")
    disable_for = "the endpoint answered 410 Gone" if code == 410 else None
    failing = subscriptions.failing_for(redis, stored.id, now)
    if disable_for is None and failing >= settings.webhook_disable_after_seconds:
        disable_for = f"failing for {format_duration(failing)} without a success"
    delay = None if disable_for else next_delay(record.step + 1, settings.webhook_retry_schedule, retry_after)
    logger.info(
        "webhook delivery %s to %s failed (%s): %s",
        record.id,
        record.subscription_id,
        attempt.error or code,
        f"retry in {delay:g}s" if delay is not None else "no more retries",
        extra=logs.fields(delivery_id=record.id, subscription_id=record.subscription_id, event_id=record.event_id),
    )
    if delay is None:
        waiting = _settle(redis, settings, record, attempt, "failed")
        if disable_for:
            _disable(redis, settings, stored, disable_for)
        return "failed", waiting
    retry_at = now + timedelta(seconds=delay)
    return "retrying", _settle(redis, settings, record, attempt, "pending", retry_at=retry_at)


def _settle(
    redis: Redis,
    settings: Settings,
    record: DeliveryRecord,
    attempt: Attempt | None,
    status: delivery_log.Status,
    *,
    retry_at: datetime | None = None,
    counted: bool = True,
) -> Job | None:
    """In one round trip: record the attempt (none: deferred by an open circuit; `counted`: one was made) and the
    new status, schedule the retry (its job carries the next seq) in place of the lease, count the outcome (and
    its effect on the circuit), free the slot. Returns the job to start next."""
    made = int(counted and attempt is not None)
    changes: dict[str, Any] = {
        "status": status,
        "attempts": record.attempts + made,
        "step": record.step + made,
        "seq": record.seq + (retry_at is not None),
        "next_attempt_at": retry_at,
    }
    if attempt is not None:
        changes.update(
            response_code=attempt.response_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
            last_attempt_at=attempt.at,
            history=[*record.history, attempt][-delivery_log.HISTORY_KEPT :],
        )
    updated = record.model_copy(update=changes)
    figures = Recorder()
    if attempt is not None:
        figures.count("deliveries", channel="webhook", outcome="retrying" if retry_at else status)
    published = _published_at(record) if status == "succeeded" else None
    if published is not None:
        figures.observe("delivery_latency_seconds", (datetime.now(UTC) - published).total_seconds(), channel="webhook")
    name = subscriptions.circuit_name(record.subscription_id)
    pipe = redis.pipeline(transaction=False)
    delivery_log.save(pipe, updated)
    delivery_log.unlease(pipe, record.job)
    if retry_at is not None:
        delivery_log.schedule(pipe, updated.job, retry_at)  # after the save: the job must find its seq stored
    if status == "succeeded":
        subscriptions.note_success(pipe, record.subscription_id)
    figures.add_to(pipe)
    if made:
        circuit.record(
            pipe, name, ok=status == "succeeded", now=time.time(), threshold=settings.webhook_circuit_failures
        )
    delivery_log.release(pipe, record.subscription_id, record.job)
    answers = pipe.execute()
    if made and (change := circuit.change(answers[-2])):
        logger.warning(
            "webhook %s: circuit %s",
            record.subscription_id,
            change,
            extra=logs.fields(subscription_id=record.subscription_id),
        )
        opened = Recorder()
        opened.set("webhook_circuit_open", float(change == "opened"), subscription=record.subscription_id)
        opened.send(redis)
    return delivery_log.waiter(answers[-1])


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
    logger.warning(
        "webhook %s (%s) disabled: %s",
        stored.id,
        ssrf.host_of(stored.url),
        reason,
        extra=logs.fields(subscription_id=stored.id),
    )
    if settings.slack_bot_token:
        try:
            slack_client(settings).chat_postMessage(
                channel=settings.slack_channel,
                unfurl_links=False,
                text=webhook_disabled_text(ssrf.host_of(stored.url), stored.id, reason),
            )
        except Exception:  # the notice is a courtesy: the endpoint is disabled either way
            logger.exception("could not post the webhook-disabled notice to Slack")
