"""The Kafka side of `tickwatch generate`: ticks onto `financial_prices`, keyed by symbol."""

from __future__ import annotations

from collections.abc import Iterable

from kafka.admin import KafkaAdminClient
from rich import progress as rp
from rich.text import Text

from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick
from pipeline.settings import Settings


class DeliveryError(RuntimeError):
    """Some ticks did not reach Kafka; the message says how many and the first reason."""


class MissingTopic(LookupError):
    """The topic to publish to does not exist (and Kafka does not create topics on first use)."""


def require_topic(settings: Settings, topic: str) -> None:
    """MissingTopic unless `topic` exists: asked up front, as a producer would wait a minute for it, then fail."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="tickwatch-generate")
    try:
        if topic not in set(admin.list_topics()):
            raise MissingTopic(
                f"topic {topic!r} does not exist on Kafka at {settings.kafka_bootstrap}; nothing was "
                "published — `tickwatch stack init` creates the configured topics"
            )
    finally:
        admin.close()


class TickRateColumn(rp.ProgressColumn):
    """Throughput is what matters when feeding the pipeline, so show ticks/s next to the time left."""

    def render(self, task: rp.Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} ticks/s", style="progress.data.speed")


def publish(
    ticks: Iterable[Tick],
    settings: Settings,
    *,
    topic: str | None = None,
    progress: bool = True,
    total: int | None = None,
) -> int:
    """Sends every tick (key = symbol, so one symbol stays in order on one partition) and returns how many
    were delivered. `total` (the number of ticks to come) gives the progress bar its length and an ETA.
    Raises DeliveryError if any send failed: a silently lost tick is a missed crash. Connecting waits at
    most `kafka_connect_timeout_seconds`, so an unreachable Kafka fails before the first tick."""
    target = topic or settings.ticks_topic
    producer = make_producer(settings, bootstrap_timeout_ms=round(settings.kafka_connect_timeout_seconds * 1000))
    try:
        require_topic(settings, target)
    except Exception:
        producer.close()
        raise
    failures: list[Exception] = []
    sent = 0
    columns = (
        rp.TextColumn(f"→ {target}"),
        rp.BarColumn(),
        rp.MofNCompleteColumn(),
        TickRateColumn(),
        rp.TimeElapsedColumn(),
        rp.TimeRemainingColumn(),
    )
    try:
        with rp.Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("publishing", total=total)
            for tick in ticks:
                future = producer.send(target, key=tick.symbol.encode(), value=tick.to_json())
                future.add_errback(failures.append)
                sent += 1
                bar.advance(task)
            producer.flush()
    finally:
        producer.close()
    if failures:
        raise DeliveryError(f"{len(failures)} of {sent} ticks were not delivered to {target}: {failures[0]}")
    return sent
