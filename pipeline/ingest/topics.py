"""Kafka topics the pipeline owns, and the producer settings every Tickwatch producer shares."""

from __future__ import annotations

from contextlib import suppress

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Ticks are spread over several partitions (ordering is per symbol = per key); the others need one."""
    return {settings.ticks_topic: settings.ticks_partitions, settings.dlq_topic: 1, settings.alerts_topic: 3}


def ensure_topics(settings: Settings, partitions: dict[str, int] | None = None) -> list[str]:
    """Create missing topics; returns the names it created. Safe to call any number of times."""
    wanted = partitions or topic_partitions(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="tickwatch-admin")
    try:
        missing = [name for name in wanted if name not in set(admin.list_topics())]
        if missing:
            # Another process may win the race; the topic is then there, which is all we need.
            with suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(name, num_partitions=wanted[name], replication_factor=1) for name in missing]
                )
        return missing
    finally:
        admin.close()


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    """A producer tuned for throughput: batches up to 256 KiB, waits up to 10 ms to fill them, lz4."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "linger_ms": 10,
        "batch_size": 256 * 1024,
        "compression_type": "lz4",
        "max_in_flight_requests_per_connection": 5,
    }
    options.update(overrides)
    return KafkaProducer(**options)
