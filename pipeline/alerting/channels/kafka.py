"""Alerts onto the Kafka `alerts` topic, keyed by symbol, for downstream systems."""

from __future__ import annotations

from pipeline.ingest.topics import make_producer
from pipeline.schema import AlertEvent
from pipeline.settings import Settings


class KafkaNotifier:
    def __init__(self, settings: Settings) -> None:
        self.topic = settings.alerts_topic
        self.producer = make_producer(settings, linger_ms=0)
        self.producer.partitions_for(self.topic)  # fetch metadata now, not on the first alert

    def send(self, event: AlertEvent) -> None:
        # Wait for the broker's ack: a failure must raise so that the delivery task retries.
        self.producer.send(self.topic, key=event.data.symbol.encode(), value=event.to_json()).get(timeout=10)
