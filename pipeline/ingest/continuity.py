"""Synthetic markets that go on from where the stored market stands, and a start past any unread backlog.

A synthetic replay (`tickwatch generate`, the demo) that restarted every symbol at a fixed price would jump from
the price detection last saw for it, and raise alerts nobody injected; and one that started earlier than the
ticks already evaluated would only be stored, not evaluated. So a replay continues each symbol at its last
price, after its last tick. A replay that counts and shows only its own ticks (the demo) also starts its
consumer group at the topic's end, past ticks others left unread.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
from redis import Redis

from pipeline.detect import state
from pipeline.ingest.generator import Scenario
from pipeline.schema import from_ms
from pipeline.settings import Settings


def going_on(redis: Redis, scenario: Scenario, *, start: datetime | None = None) -> Scenario:
    """`scenario` continued from the stored market: each symbol opens at its last evaluated price, and the
    replay starts after the newest of their last ticks (and no earlier than `start`, when given)."""
    last = {
        symbol: (s.ts[-1], s.prices[-1])
        for symbol, s in state.load_states(redis, list(scenario.symbols)).items()
        if s.ts
    }
    if not last:
        return scenario
    after = from_ms(max(ts for ts, _ in last.values())).replace(microsecond=0) + timedelta(seconds=1)
    return replace(
        scenario,
        start=max(start or scenario.start, after),
        opening_prices={**scenario.opening_prices, **{symbol: price for symbol, (_, price) in last.items()}},
    )


def skip_backlog(settings: Settings, redis: Redis) -> int:
    """Move the bridges' consumer group (and the workers' progress) to the end of the ticks topic; returns how
    many unread ticks were skipped. Call it before the bridge starts."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group, enable_auto_commit=False
    )
    try:
        parts = [
            TopicPartition(settings.ticks_topic, p) for p in consumer.partitions_for_topic(settings.ticks_topic) or ()
        ]
        ends = consumer.end_offsets(parts)
        committed = {tp: consumer.committed(tp) or 0 for tp in parts}
        consumer.assign(parts)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
    finally:
        consumer.close()
    for tp, end in ends.items():
        state.skip_to(redis, tp.topic, tp.partition, end)
    return sum(max(0, end - committed[tp]) for tp, end in ends.items())
