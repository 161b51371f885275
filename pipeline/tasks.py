"""Celery tasks: apply a partition's batch of ticks (detect, store, alert) and deliver alerts per channel.

The bridge sends one `process_batch` per Kafka partition poll. Batches of one partition are applied one
at a time and in offset order (see pipeline.state), so any number of workers gives the result one would.
Side effects come before the state commit: a crash re-runs the batch, ES writes are idempotent (fixed
ids) and deliveries are deduplicated per channel, so re-processing is harmless.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from elasticsearch import Elasticsearch
from redis import Redis

from pipeline import state, store
from pipeline.controls import controls_for
from pipeline.detection import SymbolState, TickPoint, advance
from pipeline.notifiers import Notifier, build, channel_names
from pipeline.schema import AlertEvent, Anomaly
from pipeline.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DELIVERED_TTL_SECONDS = 7 * 24 * 3600
LATENCY_SAMPLES = 10_000


def make_app(settings: Settings) -> Celery:
    app = Celery("tickwatch", broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # a task is acknowledged after it ran, so a dying worker loses nothing
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a reserved batch must not sit behind a busy child
        broker_transport_options={"visibility_timeout": 300},
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.celery_queue,
        task_routes={
            "tickwatch.process_batch": {"queue": settings.celery_queue},
            "tickwatch.deliver": {"queue": settings.alerts_queue},
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


@lru_cache
def resources() -> Resources:
    settings = get_settings()
    indices = store.Indices(settings.index_prefix)
    return Resources(settings, Redis.from_url(settings.redis_url), store.connect(settings), indices,
                     channel_names(settings))


@app.task(bind=True, name="tickwatch.process_batch", max_retries=None)
def process_batch(self: Task, batch: dict[str, Any]) -> dict[str, int]:
    """Apply one batch once its partition's predecessor has been applied; until then, requeue it."""
    res = resources()
    topic, partition = batch["topic"], batch["partition"]
    lock = state.partition_lock(res.redis, topic, partition)
    if not lock.acquire():
        raise self.retry(countdown=0.05)
    try:
        done = state.progress(res.redis, topic, partition)
        if (done is None and not batch["first"]) or (done is not None and batch["first_offset"] > done):
            waited = time.time() - batch["sent_at"]
            if waited <= res.settings.gap_timeout_seconds:
                # The partition's previous batch is not applied yet: step aside rather than hold a worker.
                raise self.retry(countdown=0.02)
            logger.warning("partition %s:%s: the batch before offset %s never arrived in %.0fs; going on",
                           topic, partition, batch["first_offset"], waited)
        return apply_batch(res, batch, done)
    finally:
        lock.release()


def apply_batch(res: Resources, batch: dict[str, Any], done: int | None) -> dict[str, int]:
    """Detect, store, alert and commit the ticks of `batch` not applied before (offset >= `done`)."""
    fresh = [tick for tick in batch["ticks"] if done is None or tick[4] >= done]
    by_symbol: dict[str, list[TickPoint]] = defaultdict(list)
    for symbol, ts, price, volume, _offset, published in fresh:
        by_symbol[symbol].append(TickPoint(ts, price, volume, published))

    symbols = sorted(by_symbol)
    controls = controls_for(res.redis, res.settings, symbols)
    states: dict[str, SymbolState] = state.load_states(res.redis, symbols)
    now = datetime.now(UTC)
    anomalies: list[Anomaly] = []
    alerts: list[Anomaly] = []
    late: set[tuple[str, int]] = set()
    for symbol in symbols:
        outcome = advance(states[symbol], symbol, by_symbol[symbol], controls[symbol].rules,
                          lateness_ms=res.settings.lateness_seconds * 1000, now=now,
                          muted=controls[symbol].muted)
        anomalies += outcome.anomalies
        alerts += [a for a in outcome.anomalies if a.id in outcome.new_ids and not a.muted]
        late.update((symbol, tick.ts) for tick in outcome.late)

    partition = batch["partition"]
    actions = [store.tick_action(res.indices, {
        "symbol": symbol, "ts": ts, "price": price, "volume": volume, "published": published,
        "late": (symbol, ts) in late, "partition": partition, "offset": offset,
    }) for symbol, ts, price, volume, offset, published in fresh]
    actions += [store.anomaly_action(res.indices, anomaly) for anomaly in anomalies]
    store.write(res.es, actions)

    for anomaly in alerts:
        event = AlertEvent.for_anomaly(anomaly).model_dump(mode="json")
        for channel in res.channels:
            deliver.apply_async((channel, event), queue=res.settings.alerts_queue)

    counts = {"ticks": len(fresh), "late": len(late), "anomalies": len({a.id for a in anomalies}),
              "alerts": len(alerts), "batches": 1}
    state.commit(res.redis, topic=batch["topic"], partition=partition, next_offset=batch["next_offset"],
                 states=states, counts=counts)
    return counts


@app.task(bind=True, name="tickwatch.deliver", autoretry_for=(Exception,), retry_backoff=1,
          retry_backoff_max=300, retry_jitter=True, max_retries=get_settings().delivery_max_retries)
def deliver(self: Task, channel: str, event: dict[str, Any]) -> str:
    """Send one alert on one channel, at most once per channel as far as we can tell."""
    res = resources()
    alert = AlertEvent.model_validate(event)
    delivered = f"tickwatch:delivered:{channel}:{alert.id}"
    if res.redis.exists(delivered):
        return "duplicate"
    res.notifier(channel).send(alert)
    pipe = res.redis.pipeline(transaction=False)
    pipe.set(delivered, 1, ex=DELIVERED_TTL_SECONDS)
    if alert.data.published_at is not None:
        latency_ms = (datetime.now(UTC) - alert.data.published_at).total_seconds() * 1000
        pipe.lpush(latency_key(channel), round(latency_ms, 1))
        pipe.ltrim(latency_key(channel), 0, LATENCY_SAMPLES - 1)
    pipe.execute()
    return "sent"


def latency_key(channel: str) -> str:
    """Redis list of recent produce-to-delivery latencies (ms) for a channel: the bench and demo read it."""
    return f"tickwatch:latency:{channel}"
