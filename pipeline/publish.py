"""The Kafka side of `tickwatch generate`: ticks onto `financial_prices`, keyed by symbol."""

from __future__ import annotations

from collections.abc import Iterable

from rich import progress as rp
from rich.text import Text

from pipeline.schema import Tick
from pipeline.settings import Settings
from pipeline.topics import make_producer


class DeliveryError(RuntimeError):
    """Some ticks did not reach Kafka; the message says how many and the first reason."""


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
    failures: list[Exception] = []
    sent = 0
    columns = (rp.TextColumn(f"→ {target}"), rp.BarColumn(), rp.MofNCompleteColumn(), TickRateColumn(),
               rp.TimeElapsedColumn(), rp.TimeRemainingColumn())
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
