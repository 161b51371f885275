"""Dead letters of a day, counted from the DLQ topic itself (Kafka's offsets by timestamp)."""

from __future__ import annotations

import logging
from datetime import datetime

from kafka import KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from pipeline.schema import to_ms
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def dead_letters(settings: Settings, start: datetime, end: datetime) -> int | None:
    """Records the DLQ topic received in [start, end), from offsets by timestamp; None if Kafka cannot say."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=15_000,
            bootstrap_timeout_ms=round(settings.kafka_connect_timeout_seconds * 1000),
        )
    except KafkaError as error:
        log.warning("dead letters not counted: %s", error)
        return None
    try:
        # topics() waits for the cluster's metadata; partitions_for_topic alone may answer None before it came,
        # which read as "no dead letters" (a re-run of the DAG once said 0 for a day with 3)
        if settings.dlq_topic not in consumer.topics():
            return 0
        partitions = [
            TopicPartition(settings.dlq_topic, p) for p in consumer.partitions_for_topic(settings.dlq_topic) or ()
        ]
        if not partitions:
            return 0
        ends = consumer.end_offsets(partitions)
        at_start = consumer.offsets_for_times({tp: to_ms(start) for tp in partitions})
        at_end = consumer.offsets_for_times({tp: to_ms(end) for tp in partitions})
        # No record at or after a time: the partition's end offset stands for it.
        return sum(
            (at_end[tp].offset if at_end[tp] else ends[tp]) - (at_start[tp].offset if at_start[tp] else ends[tp])
            for tp in partitions
        )
    except KafkaError as error:
        log.warning("dead letters not counted: %s", error)
        return None
    finally:
        consumer.close()
