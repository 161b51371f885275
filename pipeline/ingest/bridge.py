"""The bridge: Kafka `financial_prices` -> validated batches -> Celery, with at-least-once offsets.

Each poll becomes one `process_batch` task per lane (the valid ticks of the lane's partitions, in compact
form; partitions are spread over `TICKWATCH_LANES` lanes so that many workers can apply a poll in parallel)
and the invalid records go to the dead-letter topic with their original bytes and the reason. Offsets are committed
only after every task is in the broker and every dead letter is acknowledged by Kafka. Validation happens
here because this is where the original bytes are, so a dead letter keeps them untouched.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from kombu.exceptions import OperationalError
from prometheus_client import Counter, Gauge
from redis import Redis
from redis.exceptions import RedisError

from pipeline.detect import state
from pipeline.ingest.topics import make_producer
from pipeline.metrics import Recorder
from pipeline.outage import Outage
from pipeline.schema import Batch, InvalidTick, PartitionRange, TickRow, parse_tick, to_ms
from pipeline.settings import Settings
from pipeline.worker.app import PROCESS_BATCH, app_for

logger = logging.getLogger(__name__)

CONSUMED = Counter("tickwatch_bridge_consumed_total", "Kafka records read from the ticks topic")
DEAD_LETTERED = Counter("tickwatch_bridge_dead_lettered_total", "Records sent to the dead-letter topic")
BATCHES = Counter("tickwatch_bridge_batches_total", "Batches handed to Celery")
LAG = Gauge("tickwatch_bridge_lag", "Records not yet read, per partition", ["partition"])
# What waiting can fix: an engine away (Celery's broker is Redis), a connection reset, a timeout.
ENGINE_ERRORS = (KafkaError, RedisError, OperationalError, OSError)
TOPIC_CHECKS = 3
TOPIC_CHECK_SECONDS = 2.0
IDLE_CHECK_SECONDS = 5.0
ASSIGNED = Gauge("tickwatch_bridge_assigned_partitions", "Partitions this bridge owns (0 for long: nothing consumed)")


def to_batch(
    polled: Mapping[TopicPartition, Sequence[ConsumerRecord]], *, max_future_ms: int
) -> tuple[Batch, list[tuple[ConsumerRecord, str]]]:
    """Turn one poll (or one lane of it) into a Celery batch of valid ticks and a list of (record, reason).

    Besides schema errors, a record is rejected when its key is not its symbol (the symbol's ticks must
    all share one partition to stay in order) or when it is dated too far ahead (one tick from 2099 would
    otherwise make every real tick of that symbol "late").
    """
    parts: list[PartitionRange] = []
    ticks: list[TickRow] = []
    rejected: list[tuple[ConsumerRecord, str]] = []
    horizon = time.time() * 1000 + max_future_ms
    for tp, records in polled.items():
        parts.append(
            PartitionRange(
                topic=tp.topic,
                partition=tp.partition,
                first_offset=records[0].offset,
                next_offset=records[-1].offset + 1,
            )
        )
        for record in records:
            try:
                tick = parse_tick(record.value)
            except InvalidTick as error:
                rejected.append((record, error.reason))
                continue
            ts = to_ms(tick.timestamp)
            if (record.key or b"").decode(errors="replace").strip().upper() != tick.symbol:
                rejected.append((record, f"message key must be the symbol {tick.symbol!r}, got {record.key!r}"))
            elif ts > horizon:
                rejected.append((record, f"timestamp is more than {max_future_ms // 1000}s in the future"))
            else:
                ticks.append(
                    TickRow(
                        tick.symbol,
                        ts,
                        tick.price,
                        tick.volume,
                        tp.partition,
                        record.offset,
                        record.timestamp,
                        tick.trusted,
                    )
                )
    return Batch(parts=parts, ticks=ticks, sent_at=time.time()), rejected


class _Restart(ConsumerRebalanceListener):
    """A partition (re)assigned to us starts again from the position Kafka gives us; the gauge shows how many
    we own."""

    def __init__(self, started: set[TopicPartition]) -> None:
        self.started = started

    def on_partitions_revoked(self, revoked) -> None:
        self.started.difference_update(revoked)
        ASSIGNED.set(0)

    def on_partitions_assigned(self, assigned) -> None:
        self.started.difference_update(assigned)
        ASSIGNED.set(len(assigned))
        logger.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


class MissingTopic(RuntimeError):
    """The ticks topic does not exist: waiting cannot fix that (topics are created by `tickwatch stack init`)."""


class Bridge:
    """A consumer-group member; run several for more throughput (Kafka spreads the partitions).

    A daemon: Kafka or Redis away, at start or later, is waited out (one log line when it goes, one when it is
    back); records read but not handed on are read again, as their offsets were not committed. Only a ticks
    topic that does not exist ends it (MissingTopic)."""

    def __init__(self, settings: Settings, *, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.started: set[TopicPartition] = set()
        self.redis = Redis.from_url(settings.redis_url)
        self.tasks = app_for(settings)
        self.outage = Outage(
            f"Kafka or Redis (Kafka at {settings.kafka_bootstrap}, Redis at {settings.redis_url})", logger
        )
        self.consumer: KafkaConsumer | None = None
        self.dlq: KafkaProducer | None = None
        self.polled: dict[TopicPartition, list[ConsumerRecord]] = {}
        self._checked = 0.0

    def connect(self) -> None:
        """Join the consumer group, waiting for Kafka as long as it takes (or until `stop`)."""
        missing = 0
        while not self.stop.is_set():
            try:
                self.consumer, self.dlq = self._join()
                self.outage.ok()
                return
            except MissingTopic:
                missing += 1
                if missing >= TOPIC_CHECKS:  # a broker that is starting may not know its topics yet: ask again
                    raise
                self.stop.wait(TOPIC_CHECK_SECONDS)
            except (KafkaError, OSError) as error:
                self.stop.wait(self.outage.failed(error))

    def _join(self) -> tuple[KafkaConsumer, KafkaProducer]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.batch_max_ticks,
            fetch_max_wait_ms=self.settings.batch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            # Fetch the topic's metadata before joining the group: joining without it can leave this member
            # with no partitions until the next metadata refresh, minutes later.
            if not consumer.partitions_for_topic(self.settings.ticks_topic):
                raise MissingTopic(
                    f"Kafka topic {self.settings.ticks_topic!r} does not exist: run `tickwatch stack init`"
                )
            consumer.subscribe([self.settings.ticks_topic], listener=_Restart(self.started))
            # Refresh metadata once more now that we are subscribed, before the first join. Otherwise the first
            # join races the subscription's own metadata refresh and is followed by a second rebalance, and
            # kafka-python 3.0.12 can finish that one without ever applying its assignment: the bridge then
            # sits with no partitions (seen about once in 40 starts on a busy machine).
            consumer.topics()
            return consumer, make_producer(self.settings, linger_ms=5)
        except BaseException:
            consumer.close()
            raise

    def run(self) -> None:
        """Poll and hand on until `stop` is set (SIGTERM in the CLI); then commit and leave the group."""
        self.connect()
        try:
            while not self.stop.is_set():
                try:
                    if self.poll_once() or self._kafka_reachable():
                        self.outage.ok()
                    else:
                        self.outage.failed(ConnectionError("no broker answers"))
                except ENGINE_ERRORS as error:
                    self._rewind()
                    self.stop.wait(self.outage.failed(error))
        finally:
            if self.consumer is not None:
                self.consumer.close()
            if self.dlq is not None:
                self.dlq.close()

    def _kafka_reachable(self) -> bool:
        """After an empty poll: whether any broker is connected (kafka-python reconnects by itself and says
        nothing, so this is how the bridge notices Kafka going away while idle). Checked at most every few
        seconds; `_client` is the consumer's network client, which has no public probe."""
        now = time.monotonic()
        if now - self._checked < IDLE_CHECK_SECONDS:
            return not self.outage.away
        self._checked = now
        assert self.consumer is not None
        client = self.consumer._client
        return any(client.connected(broker.node_id) for broker in client.cluster.brokers())

    def _rewind(self) -> None:
        """Read again what the failed hand-off polled (its offsets were not committed)."""
        assert self.consumer is not None
        for tp, records in self.polled.items():
            with contextlib.suppress(KafkaError, AssertionError, ValueError):  # a partition no longer ours
                self.consumer.seek(tp, records[0].offset)
        self.polled = {}

    def collect(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """Records for one batch: up to `batch_max_ticks`, gathered for at most `batch_max_wait_ms` after the
        first arrives. Bigger batches cost workers far less per tick; the wait bounds the added latency."""
        assert self.consumer is not None, "connect() first"
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
        polled = self.polled = self.collect()
        if not polled:
            return 0
        for tp, records in polled.items():
            if tp not in self.started:
                # Where this bridge starts the partition; workers apply its ranges in order from there.
                state.start_partition(self.redis, tp.topic, tp.partition, records[0].offset)
                self.started.add(tp)
        lanes: dict[int, dict[TopicPartition, Sequence[ConsumerRecord]]] = {}
        for tp, records in polled.items():
            lanes.setdefault(tp.partition % self.settings.lanes, {})[tp] = records
        dead = []
        for lane in lanes.values():
            batch, rejected = to_batch(lane, max_future_ms=self.settings.max_future_seconds * 1000)
            # Sent even with no valid tick: the partitions' progress must move past these offsets too.
            self.tasks.send_task(PROCESS_BATCH, args=(batch,), queue=self.settings.celery_queue)
            BATCHES.inc()
            dead += [self._dead_letter(record, reason) for record, reason in rejected]
        for future in dead:
            future.get(timeout=30)  # a dead letter Kafka did not take must not be committed past
        figures = Recorder()
        self._commit(polled, figures)
        consumed = sum(len(records) for records in polled.values())
        CONSUMED.inc(consumed)
        DEAD_LETTERED.inc(len(dead))
        state.bump(self.redis, {"consumed": consumed, "dead_lettered": len(dead)}, figures)
        return consumed

    def _commit(self, polled: Mapping[TopicPartition, Sequence[ConsumerRecord]], figures: Recorder) -> None:
        """Commit what was handed on, for the partitions we still own (a rebalance may have moved some);
        the lag per partition goes to this process's gauge and to `figures` (the fleet's view, in Redis)."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        offsets = {
            tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in polled.items() if tp in assigned
        }
        for tp, offset in offsets.items():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                LAG.labels(str(tp.partition)).set(highwater - offset.offset)
                figures.set("bridge_lag", highwater - offset.offset, partition=str(tp.partition))
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as error:
            # The new owner re-reads from the last commit; re-processing is harmless (see pipeline.tasks).
            logger.warning("offset commit lost to a rebalance: %s", error)

    def _dead_letter(self, record: ConsumerRecord, reason: str):
        logger.warning("dead letter %s:%s@%s: %s", record.topic, record.partition, record.offset, reason)
        headers = [
            ("error", reason.encode()),
            ("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        assert self.dlq is not None
        return self.dlq.send(self.settings.dlq_topic, key=record.key, value=record.value, headers=headers)
