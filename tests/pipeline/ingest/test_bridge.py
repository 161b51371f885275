"""The bridge's batching and the workers' ordering rule, as pure functions (no broker needed)."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

from pipeline.ingest.bridge import to_batch
from pipeline.worker.batches import _ready

TOPIC = "financial_prices"


def record(partition: int, offset: int, key: bytes | None, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        TOPIC, partition, -1, offset, 1_800_000_000_123, 0, key, value, [], None, len(key or b""), len(value), 0
    )


def tick(symbol: str, when: str = "2026-11-23T14:30:00Z") -> bytes:
    return f'{{"symbol": "{symbol}", "timestamp": "{when}", "price": 10}}'.encode()


def test_a_poll_becomes_ranges_per_partition_valid_ticks_and_reasons():
    polled = {
        TopicPartition(TOPIC, 0): [record(0, 10, b"TSLA", tick("TSLA")), record(0, 11, b"TSLA", b"{bad")],
        TopicPartition(TOPIC, 3): [
            record(3, 7, b"btc-usd", tick("btc-usd")),
            record(3, 8, None, tick("ETH-USD")),
            record(3, 9, b"AAPL", tick("AAPL", "2099-01-01T00:00:00Z")),
        ],
    }
    batch, rejected = to_batch(polled, max_future_ms=86_400_000)
    assert batch["parts"] == [
        {"topic": TOPIC, "partition": 0, "first_offset": 10, "next_offset": 12},
        {"topic": TOPIC, "partition": 3, "first_offset": 7, "next_offset": 10},
    ]
    assert [(t[0], t[4], t[5], t[6]) for t in batch["ticks"]] == [
        ("TSLA", 0, 10, 1_800_000_000_123),
        ("BTC-USD", 3, 7, 1_800_000_000_123),
    ]
    reasons = {r.offset: reason for r, reason in rejected}
    assert reasons.keys() == {11, 8, 9}
    assert "Invalid JSON" in reasons[11]
    assert "key must be the symbol" in reasons[8]
    assert "in the future" in reasons[9]


def test_a_range_is_applied_only_right_after_the_previous_one():
    part = {"topic": TOPIC, "partition": 2, "first_offset": 100, "next_offset": 150}
    assert _ready(part, {2: 100})  # its predecessor ended at 100
    assert _ready(part, {2: 120})  # a redelivery overlapping what was applied: only the rest is applied
    assert not _ready(part, {2: 50})  # offsets 50..99 are still on their way
    assert _ready(part, {2: None})  # no progress at all: Redis was emptied, start here


def test_a_ticks_source_says_whether_its_print_is_trusted_and_other_sources_are_not():
    bar = b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z", "price": 10, "source": "bars"}'
    feed = b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:01Z", "price": 10, "source": "coinbase"}'
    polled = {
        TopicPartition(TOPIC, 0): [
            record(0, 1, b"TSLA", bar),
            record(0, 2, b"TSLA", feed),
            record(0, 3, b"TSLA", tick("TSLA")),
        ]
    }
    batch, rejected = to_batch(polled, max_future_ms=86_400_000)
    assert rejected == [] and [t[7] for t in batch["ticks"]] == [True, False, False]
