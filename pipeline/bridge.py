"""The bridge: Kafka `financial_prices` -> validated batches -> Celery, with at-least-once offsets.

Each poll becomes one `process_batch` task per lane (the valid ticks of the lane's partitions, in compact
form; partitions are spread over `TICKWATCH_LANES` lanes so that many workers can apply a poll in parallel)
and the invalid records go to the dead-letter topic with their original bytes and the reason. Offsets are committed
only after every task is in the broker and every dead letter is acknowledged by Kafka. Validation happens
here because this is where the original bytes are, so a dead letter keeps them untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter, Gauge
from redis import Redis

from pipeline import state
from pipeline.schema import InvalidTick, parse_tick, to_ms
from pipeline.settings import Settings
from pipeline.tasks import process_batch
from pipeline.topics import make_producer

logger = logging.getLogger(__name__)

CONSUMED = Counter("tickwatch_bridge_consumed_total", "Kafka records read from the ticks topic")
DEAD_LETTERED = Counter("tickwatch_bridge_dead_lettered_total", "Records sent to the dead-letter topic")
BATCHES = Counter("tickwatch_bridge_batches_total", "Batches handed to Celery")
LAG = Gauge("tickwatch_bridge_lag", "Records not yet read, per partition", ["partition"])


def to_batch(polled: Mapping[TopicPartition, Sequence[ConsumerRecord]], started: set[TopicPartition]
             ) -> tuple[dict[str, Any], list[tuple[ConsumerRecord, str]]]:
    """Turn one poll into a Celery batch of valid ticks (all partitions) and a list of (record, reason).

    Each part names a partition's offset range; `first` marks the first range since this bridge was
    assigned the partition: with no progress recorded yet, workers start the partition there.
    """
    parts: list[dict[str, Any]] = []
    ticks: list[list[Any]] = []
    rejected: list[tuple[ConsumerRecord, str]] = []
    for tp, records in polled.items():
        parts.append({"topic": tp.topic, "partition": tp.partition, "first_offset": records[0].offset,
                      "next_offset": records[-1].offset + 1, "first": tp not in started})
        for record in records:
            try:
                tick = parse_tick(record.value)
            except InvalidTick as error:
                rejected.append((record, error.reason))
                continue
            ticks.append([tick.symbol, to_ms(tick.timestamp), tick.price, tick.volume, tp.partition,
                          record.offset, record.timestamp])
    return {"parts": parts, "ticks": ticks, "sent_at": time.time()}, rejected


class _Restart(ConsumerRebalanceListener):
    """A partition (re)assigned to us starts a new sequence of batches."""

    def __init__(self, started: set[TopicPartition]) -> None:
        self.started = started

    def on_partitions_revoked(self, revoked) -> None:
        self.started.difference_update(revoked)

    def on_partitions_assigned(self, assigned) -> None:
        self.started.difference_update(assigned)


class Bridge:
    """A consumer-group member; run several for more throughput (Kafka spreads the partitions)."""

    def __init__(self, settings: Settings, *, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_max_ticks,
            fetch_max_wait_ms=settings.batch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.started: set[TopicPartition] = set()
        self.consumer.subscribe([settings.ticks_topic], listener=_Restart(self.started))
        self.dlq = make_producer(settings, linger_ms=5)
        self.redis = Redis.from_url(settings.redis_url)

    def run(self) -> None:
        """Poll and hand on until `stop` is set (SIGTERM in the CLI); then commit and leave the group."""
        try:
            while not self.stop.is_set():
                self.poll_once()
        finally:
            self.consumer.close()
            self.dlq.close()

    def collect(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records for one batch: up to `batch_max_ticks`, gathered for at most `batch_max_wait_ms` after the
        first arrives. Bigger batches cost workers far less per tick; the wait bounds the added latency."""
        limit = self.settings.batch_max_ticks
        collected: dict[TopicPartition, list[ConsumerRecord]] = {}
        count, deadline = 0, None
        while count < limit:
            remaining_ms = 100 if deadline is None else int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            polled = self.consumer.poll(timeout_ms=remaining_ms, max_records=limit - count)
            if not polled:
                break  # nothing more within the time left (or nothing at all)
            for tp, records in polled.items():
                collected.setdefault(tp, []).extend(records)
                count += len(records)
            if deadline is None:
                deadline = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        return collected

    def poll_once(self) -> int:
        polled = self.collect()
        if not polled:
            return 0
        lanes: dict[int, dict[TopicPartition, Sequence[ConsumerRecord]]] = {}
        for tp, records in polled.items():
            lanes.setdefault(tp.partition % self.settings.lanes, {})[tp] = records
        batches, dead = [], []
        for lane in lanes.values():
            batch, rejected = to_batch(lane, self.started)
            # Sent even with no valid tick: the partitions' progress must move past these offsets too.
            process_batch.apply_async((batch,), queue=self.settings.celery_queue)
            BATCHES.inc()
            batches.append(batch)
            dead += [self._dead_letter(record, reason) for record, reason in rejected]
        for future in dead:
            future.get(timeout=30)  # a dead letter Kafka did not take must not be committed past
        offsets = {}
        for part in (part for batch in batches for part in batch["parts"]):
            tp = TopicPartition(part["topic"], part["partition"])
            self.started.add(tp)
            offsets[tp] = OffsetAndMetadata(part["next_offset"], "", -1)
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                LAG.labels(str(tp.partition)).set(highwater - part["next_offset"])
        self.consumer.commit(offsets)
        consumed = sum(len(records) for records in polled.values())
        CONSUMED.inc(consumed)
        DEAD_LETTERED.inc(len(dead))
        state.bump(self.redis, {"consumed": consumed, "dead_lettered": len(dead)})
        return consumed

    def _dead_letter(self, record: ConsumerRecord, reason: str):
        logger.warning("dead letter %s:%s@%s: %s", record.topic, record.partition, record.offset, reason)
        headers = [
            ("error", reason.encode()),
            ("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        return self.dlq.send(self.settings.dlq_topic, key=record.key, value=record.value, headers=headers)
