"""Celery tasks: apply a partition's batch of ticks (detect, store, alert) and deliver alerts per channel.

The bridge sends one `process_batch` per Kafka poll. For every partition, its offset ranges are applied one
at a time and in offset order (see pipeline.state), so any number of workers gives the result one would.
Side effects are handed on before the state commit: a crash re-runs the batch, ES writes are idempotent
(fixed ids) and deliveries are claimed per channel, so re-processing is harmless. Alerts and tick storage
are tasks of their own, so neither waits for the other or holds up the next batch.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from celery import Celery, Task
from celery.signals import worker_process_init
from elasticsearch import Elasticsearch
from kombu import serialization
from redis import Redis

from pipeline import keys, store
from pipeline.alerting import slack_messages
from pipeline.alerting.channels import Notifier, build, channel_names
from pipeline.controls import controls_for
from pipeline.detect import state
from pipeline.detect.detection import SymbolState, TickPoint, advance
from pipeline.metrics import Recorder
from pipeline.schema import AlertEvent, Anomaly
from pipeline.settings import Settings, get_settings
from pipeline.webhooks import subscriptions

logger = logging.getLogger(__name__)

DELIVERED_TTL_SECONDS = 7 * 24 * 3600
CLAIM_TTL_SECONDS = 120  # longer than one send with its own retries takes
LATENCY_SAMPLES = 10_000
PREDECESSOR_WAIT_SECONDS = 30.0


# Task messages carry whole batches: orjson encodes them ~10x and decodes them ~5x faster than kombu's json.
serialization.register("orjson", orjson.dumps, orjson.loads, content_type="application/x-orjson")


def make_app(settings: Settings) -> Celery:
    app = Celery("tickwatch", broker=settings.redis_url)
    app.conf.update(
        task_serializer="orjson",
        accept_content=["orjson", "json"],  # json: tasks queued by an older bridge
        task_ignore_result=True,
        task_acks_late=True,  # a task is acknowledged after it ran, so a dying worker loses nothing
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a reserved batch must not sit behind a busy child
        # Longer than any retry countdown (deliveries back off up to 240 s), so Redis never hands a waiting
        # task to a second worker.
        broker_transport_options={"visibility_timeout": 300},
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        include=["pipeline.webhooks.delivery"],  # webhook delivery tasks and their retry scheduler
        task_routes={
            "tickwatch.process_batch": {"queue": settings.celery_queue},
            "tickwatch.store_ticks": {"queue": settings.celery_queue},
            "tickwatch.deliver": {"queue": settings.alerts_queue},
            "tickwatch.deliver_webhook": {"queue": settings.alerts_queue},
            "tickwatch.slack_refresh": {"queue": settings.alerts_queue},
        },
    )
    return app


app = make_app(get_settings())


@dataclass
class Resources:
    """Per worker process clients, made on first use (after the fork)."""

    settings: Settings
    redis: Redis
    es: Elasticsearch
    indices: store.Indices
    channels: list[str]
    notifiers: dict[str, Notifier] = field(default_factory=dict)

    def notifier(self, channel: str) -> Notifier:
        if channel not in self.notifiers:
            self.notifiers[channel] = build(channel, self.settings)
        return self.notifiers[channel]


@worker_process_init.connect
def warm_up(**_: Any) -> None:
    """Connect every client and channel when a worker child starts, not on its first alert."""
    res = resources()
    for channel in res.channels:
        res.notifier(channel)


@lru_cache
def resources() -> Resources:
    settings = get_settings()
    indices = store.Indices(settings.index_prefix)
    return Resources(
        settings, Redis.from_url(settings.redis_url), store.connect(settings), indices, channel_names(settings)
    )


@app.task(
    bind=True,
    name="tickwatch.process_batch",
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
)
def process_batch(self: Task, batch: dict[str, Any]) -> dict[str, int]:
    """Apply one batch as soon as, for each of its partitions, the previous range has been applied.

    Waiting here is safe: batches are queued in poll order and a worker takes a task only when a child is
    free (prefetch 1), so a predecessor is already running or done. After PREDECESSOR_WAIT_SECONDS the
    batch is retried later, unless its partitions have not moved for TICKWATCH_GAP_TIMEOUT_SECONDS: then
    the missing range is taken as gone (e.g. offsets reset past it) and the batch goes ahead.
    """
    res = resources()
    parts = batch["parts"]
    deadline = time.monotonic() + PREDECESSOR_WAIT_SECONDS
    while not _all_ready(parts, state.progress_of(res.redis, parts)):
        if time.monotonic() > deadline:
            stalled = state.stalled_seconds(res.redis, parts)
            if stalled <= res.settings.gap_timeout_seconds:
                raise self.retry(countdown=1, max_retries=None)
            logger.warning(
                "partitions %s have not moved for %.0fs; skipping the offsets before %s",
                [p["partition"] for p in parts],
                stalled,
                [p["first_offset"] for p in parts],
            )
            break
        time.sleep(0.005)
    # The locks make check-and-apply atomic against a duplicate copy of this very batch.
    with state.partition_locks(res.redis, parts):
        return apply_batch(res, batch, state.progress_of(res.redis, parts))


def _all_ready(parts: list[dict[str, Any]], done: dict[int, int | None]) -> bool:
    return all(_ready(part, done) for part in parts)


def _ready(part: dict[str, Any], done: dict[int, int | None]) -> bool:
    """The partition's earlier offsets are applied (no progress at all: Redis was emptied, start anywhere)."""
    applied = done[part["partition"]]
    return applied is None or part["first_offset"] <= applied


def apply_batch(res: Resources, batch: dict[str, Any], done: dict[int, int | None]) -> dict[str, int]:
    """Detect, store, alert and commit the ticks of `batch` not applied before (offset >= `done`)."""
    began = time.perf_counter()
    fresh = [tick for tick in batch["ticks"] if done[tick[4]] is None or tick[5] >= done[tick[4]]]
    by_symbol: dict[str, list[TickPoint]] = defaultdict(list)
    for symbol, ts, price, volume, _partition, _offset, published in fresh:
        by_symbol[symbol].append(TickPoint(ts, price, volume, published))

    symbols = sorted(by_symbol)
    controls = controls_for(res.redis, res.settings, symbols)
    states: dict[str, SymbolState] = state.load_states(res.redis, symbols)
    now = datetime.now(UTC)
    clock_skew_ms = res.settings.clock_skew_seconds * 1000 or None  # 0: the guard is off
    anomalies: list[Anomaly] = []
    alerts: list[Anomaly] = []  # newly detected, not muted
    resolved: list[Anomaly] = []  # episodes that ended, not muted
    deepened: list[Anomaly] = []  # a new peak of an alert already out: only its Slack message is edited
    late: set[tuple[str, int]] = set()
    suspects: dict[tuple[str, int], str] = {}  # skewed timestamps and bad prints -> why
    for symbol in symbols:
        outcome = advance(
            states[symbol],
            symbol,
            by_symbol[symbol],
            controls[symbol].rules,
            lateness_ms=res.settings.lateness_seconds * 1000,
            now=now,
            muted=controls[symbol].muted,
            clock_skew_ms=clock_skew_ms,
            baseline_seconds=res.settings.baseline_seconds,
        )
        suspects.update(((symbol, ts), reason) for ts, reason in outcome.suspects)
        anomalies += outcome.anomalies
        alerts += [a for a in outcome.anomalies if a.id in outcome.new_ids and not a.muted]
        resolved += [a for a in outcome.anomalies if a.id in outcome.resolved_ids and not a.muted]
        deepened += [a for a in outcome.anomalies if a.id in outcome.deepened_ids and not a.muted]
        late.update((symbol, tick.ts) for tick in outcome.late)

    # Alerts first: they must not wait for (or on) storage. A re-run of this batch re-sends nothing, as
    # deliveries are claimed per channel and event id (detected and resolved have their own).
    events = [AlertEvent.for_anomaly(a) for a in alerts] + [
        AlertEvent.for_anomaly(a, "anomaly.resolved") for a in resolved
    ]
    for event in events:
        payload = event.model_dump(mode="json")
        for channel in res.channels:
            deliver.apply_async((channel, payload), queue=res.settings.alerts_queue)
        subscriptions.dispatch(res.redis, res.settings, payload)  # webhooks: one delivery per subscription
    if deepened and "slack" in res.channels:
        for anomaly in deepened:
            slack_messages.anomaly_changed(res.redis, res.settings, anomaly, slack_messages.enqueue_refresh)

    # Anomaly documents change as episodes deepen, so they are written here, in batch order. Tick documents
    # are only created (then at most flagged suspect), so they are written by a task of their own: storage
    # then runs in parallel, off the path the next batch of this lane waits on.
    if anomalies:
        store.write(res.es, [store.anomaly_action(res.indices, anomaly) for anomaly in anomalies])
    if fresh:
        keys = [(tick[0], tick[1]) for tick in fresh]  # (symbol, event time)
        rows = [[*tick, key in late, suspects.get(key)] for tick, key in zip(fresh, keys, strict=True)]
        # Bad prints of earlier batches (the tick that shows one up may come in the next batch) are flagged
        # on their stored documents.
        stored_now = set(keys)
        earlier = [[symbol, ts, reason] for (symbol, ts), reason in suspects.items() if (symbol, ts) not in stored_now]
        store_ticks.apply_async((rows, earlier), queue=res.settings.celery_queue)

    counts = {
        "ticks": len(fresh),
        "late": len(late),
        "anomalies": len({a.id for a in anomalies}),
        "alerts": len(alerts),
        "batches": 1,
        "suspect": len(suspects),
    }
    progress = {
        (part["topic"], part["partition"]): max(part["next_offset"], done[part["partition"]] or 0)
        for part in batch["parts"]
    }
    figures = Recorder()
    for anomaly in alerts:
        if anomaly.published_at is not None:
            figures.observe("detection_latency_seconds", (anomaly.detected_at - anomaly.published_at).total_seconds())
    figures.observe("batch_apply_seconds", time.perf_counter() - began)
    figures.observe("batch_latency_seconds", time.time() - batch["sent_at"])
    state.commit(res.redis, progress=progress, states=states, counts=counts, figures=figures)
    return counts


@app.task(
    name="tickwatch.store_ticks",
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
)
def store_ticks(rows: list[list[Any]], suspects: list[list[Any]] | None = None) -> int:
    """Bulk-index one batch's ticks; retried until Elasticsearch takes them (ids make repeats harmless).

    Rows are a batch's compact ticks plus whether each is late and why it is suspect (None: it is not); a
    tick already stored is left as it is (see store.tick_action). `suspects` ([symbol, event time, reason])
    flags ticks stored by earlier batches. The documents are built here, off the path the lane's next batch
    waits on.
    """
    res = resources()
    actions = itertools.chain(
        (
            store.tick_action(
                res.indices,
                {
                    "symbol": symbol,
                    "ts": ts,
                    "price": price,
                    "volume": volume,
                    "published": published,
                    "late": late,
                    "partition": partition,
                    "offset": offset,
                    "suspect_reason": reason,
                },
            )
            for symbol, ts, price, volume, partition, offset, published, late, reason in rows
        ),
        (store.suspect_action(res.indices, symbol, ts, reason) for symbol, ts, reason in suspects or ()),
    )
    return store.write(res.es, actions)


@app.task(
    bind=True,
    name="tickwatch.deliver",
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
    max_retries=get_settings().delivery_max_retries,
)
def deliver(self: Task, channel: str, event: dict[str, Any]) -> str:
    """Send one alert on one channel, at most once per channel as far as we can tell."""
    res = resources()
    alert = AlertEvent.model_validate(event)
    delivered = keys.delivered(channel, alert.id)
    # Claim before sending, so two copies of this task never both send; release the claim on failure.
    figures = Recorder()
    if not res.redis.set(delivered, "sending", nx=True, ex=CLAIM_TTL_SECONDS):
        figures.count("deliveries", channel=channel, outcome="duplicate")
        figures.send(res.redis)
        return "duplicate"
    try:
        res.notifier(channel).send(alert)
    except Exception:
        res.redis.delete(delivered)
        figures.count("deliveries", channel=channel, outcome="failed")
        figures.send(res.redis)
        raise
    pipe = res.redis.pipeline(transaction=False)
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
    name="tickwatch.slack_refresh",
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
    max_retries=get_settings().delivery_max_retries,
)
def slack_refresh(kind: str, key: str) -> None:
    """Edit an alert's (or a storm's) Slack message with its newest state: the follow-up of a throttled change."""
    resources().notifier("slack").refresh(kind, key)  # type: ignore[attr-defined]
