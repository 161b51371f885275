"""The Kafka side of `tickwatch generate`: ticks onto `financial_prices`, keyed by symbol."""

from __future__ import annotations

from collections.abc import Iterable

from rich import progress as rp
from rich.text import Text

from pipeline.schema import Tick
from pipeline.settings import Settings
from pipeline.topics import make_producer


class TickRateColumn(rp.ProgressColumn):
    """Throughput is what matters when feeding the pipeline, so show ticks/s rather than an ETA."""

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
    were delivered. Raises if any send failed: a silently lost tick is a missed crash."""
    target = topic or settings.ticks_topic
    producer = make_producer(settings)
    failures: list[Exception] = []
    sent = 0
    columns = (rp.TextColumn(f"→ {target}"), rp.BarColumn(), rp.MofNCompleteColumn(), TickRateColumn(),
               rp.TimeElapsedColumn())
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
        raise RuntimeError(f"{len(failures)} of {sent} ticks were not delivered to {target}: {failures[0]}")
    return sent
