"""`tickwatch bench`: throughput and alert latency figures, all measured in one run on the same stack.

Ratios matter more than absolute numbers on a shared machine, so every rate is taken in the same
run: the raw kafka-python consume+decode rate (the ceiling), the pipeline's end-to-end rate (produced ->
detected -> indexed), and the same pipeline forced to one Celery task per tick (the naive baseline).
Alert latency is Kafka publish time -> notifier, with ticks paced at a fixed rate.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pipeline import keys, store
from pipeline.detect import state
from pipeline.ingest.generator import Scenario, default_symbols, pace
from pipeline.ingest.publish import publish
from pipeline.settings import Settings
from stack import all_services
from tickwatch.bench.common import Lane, cpu_seconds, lane, percentile, scenario
from tickwatch.fleet import pending


def raw_consume_rate(settings: Settings, expected: int) -> float:
    """The ceiling: kafka-python reading the topic and decoding each JSON value, nothing else."""
    consumer = KafkaConsumer(
        settings.ticks_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_ticks,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    seen = 0
    started = None
    try:
        while seen < expected:
            for records in consumer.poll(timeout_ms=500).values():
                started = started or time.perf_counter()
                for record in records:
                    json.loads(record.value)
                seen += len(records)
        return seen / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        consumer.close()


def pipeline_rate(current: Lane, expected: int, workers: int, concurrency: int) -> tuple[float, dict[str, float]]:
    """Ticks per second from the first batch applied until every tick is applied and searchable in ES, and
    the CPU each process spent per tick meanwhile (where the time goes, see `cpu_seconds`)."""
    current.fleet.split_workers(workers, concurrency)
    time.sleep(3)  # let the workers connect before the clock can start
    workers_started = [proc.pid for proc in current.fleet.procs]
    processes = {"bridge": [current.fleet.bridge().pid], "workers": workers_started}
    processes |= {service.name: [pid] for service in all_services(current.settings) if (pid := service.proc.pid())}
    redis = current.redis
    while not state.stats(redis).get("ticks"):
        time.sleep(0.01)
    started, before, cpu_before = time.perf_counter(), state.stats(redis)["ticks"], cpu_seconds(processes)
    es = store.connect(current.settings)
    indices = store.Indices(current.settings.index_prefix)
    while pending(current.settings, redis):
        time.sleep(0.05)
    deadline = time.monotonic() + 120
    while (indexed := _indexed(es, indices)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pipeline indexed {indexed} ticks, expected {expected}")
        time.sleep(0.05)
    rate = (expected - before) / (time.perf_counter() - started)
    cpu_after = cpu_seconds(processes)
    per_tick_us = {
        name: (cpu_after[name] - cpu_before.get(name, 0.0)) / (expected - before) * 1e6 for name in cpu_after
    }
    return rate, per_tick_us


def _indexed(es, indices: store.Indices) -> int:
    es.indices.refresh(index=indices.ticks, ignore_unavailable=True)  # none yet before the first write
    return es.count(index=indices.ticks, ignore_unavailable=True)["count"]


def alert_latency(current: Lane, rate: int, seconds: int, concurrency: int) -> tuple[list[float], float]:
    """Pace ticks at `rate`/s with one crash per symbol spread over the run; latencies (ms), Kafka -> alerts topic."""
    symbols = default_symbols(max(1, rate // 10))
    speed = rate / len(symbols)  # event seconds per wall second: every symbol ticks once per event second
    span = seconds * speed  # event seconds the run covers; one crash per symbol, spread over it
    events = [
        f"drop:{symbol}:8%:{speed:.0f}s@{60 + i * (span - 120) / len(symbols):.0f}s" for i, symbol in enumerate(symbols)
    ]
    market = Scenario.build(
        symbols=symbols,
        start=datetime.now(UTC) - timedelta(hours=1),
        interval_s=1,
        seed=2,
        duration=f"{int(seconds * speed)}s",
        events=events,
    )
    current.fleet.split_workers(concurrency=concurrency)
    current.fleet.bridge()
    time.sleep(3)
    started = time.perf_counter()
    sent = publish(pace(market.ticks(), speed), current.settings, progress=False)
    produce_rate = sent / (time.perf_counter() - started)
    redis = current.redis
    deadline = time.monotonic() + 30
    while pending(current.settings, redis) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    samples = [float(value) for value in redis.lrange(keys.delivery_latencies("kafka"), 0, -1)]
    return samples, produce_rate


def run(
    base: Settings,
    console: Console,
    *,
    ticks: int,
    naive_ticks: int,
    workers: int,
    concurrency: int,
    rate: int,
    seconds: int,
) -> None:
    """Run every measurement and print the figures with the targets they are held to."""
    log_dir = base.stack_dir / "logs"
    figures: dict[str, float] = {}
    with Progress(console=console, transient=True) as progress:
        step = progress.add_task("benchmarking", total=5)
        with lane(base, log_dir, "e2e") as main:
            progress.update(step, description=f"producing {ticks:,} ticks")
            started = time.perf_counter()
            publish(scenario(ticks).ticks(), main.settings, progress=False)
            figures["produce"] = ticks / (time.perf_counter() - started)
            progress.advance(step)
            progress.update(step, description="raw kafka-python consume + JSON decode")
            figures["raw"] = raw_consume_rate(main.settings, ticks)
            progress.advance(step)
            progress.update(step, description=f"pipeline: {workers} worker(s) x {concurrency}")
            figures["pipeline"], cpu = pipeline_rate(main, ticks, workers, concurrency)
            progress.advance(step)
        with lane(base, log_dir, "naive", TICKWATCH_BATCH_MAX_TICKS="1") as naive:
            progress.update(step, description=f"naive baseline: one task per tick, {naive_ticks:,} ticks")
            publish(scenario(naive_ticks).ticks(), naive.settings, progress=False)
            figures["naive"], _ = pipeline_rate(naive, naive_ticks, workers, concurrency)
            progress.advance(step)
        with lane(base, log_dir, "latency") as paced:
            progress.update(step, description=f"alert latency at {rate:,} ticks/s for {seconds}s")
            samples, figures["paced"] = alert_latency(paced, rate, seconds, concurrency)
            progress.advance(step)
    _report(console, figures, samples, rate)
    _report_cpu(console, cpu, figures["pipeline"])


def _report(console: Console, figures: dict[str, float], samples: list[float], rate: int) -> None:
    def verdict(ok: bool) -> str:
        return "[green]met[/green]" if ok else "[red]missed[/red]"

    table = Table("measure", "figure", "target", "", title="tickwatch bench")
    table.add_row("produce (generator -> Kafka)", f"{figures['produce']:,.0f} ticks/s", "", "")
    table.add_row("raw consume + decode (ceiling)", f"{figures['raw']:,.0f} ticks/s", "", "")
    table.add_row("pipeline end to end (-> detected -> indexed)", f"{figures['pipeline']:,.0f} ticks/s", "", "")
    table.add_row("naive: one Celery task per tick", f"{figures['naive']:,.0f} ticks/s", "", "")
    share = figures["pipeline"] / figures["raw"]
    speedup = figures["pipeline"] / figures["naive"]
    table.add_row("pipeline / raw", f"{share:.1%}", ">= 50%", verdict(share >= 0.5))
    table.add_row("pipeline / naive", f"{speedup:.1f}x", ">= 20x", verdict(speedup >= 20))
    if samples:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        table.add_row(
            f"alert latency p50 ({len(samples)} alerts, paced {figures['paced']:,.0f}/s)", f"{p50:.0f} ms", "", ""
        )
        table.add_row(f"alert latency p99 (at {rate:,} ticks/s)", f"{p99:.0f} ms", "< 250 ms", verdict(p99 < 250))
    else:
        table.add_row("alert latency", "no alerts measured", "< 250 ms", verdict(False))
    console.print(table)


def _report_cpu(console: Console, per_tick_us: dict[str, float], rate: float) -> None:
    if not per_tick_us:
        return
    table = Table("process", "CPU per tick", "cores busy", title="where the CPU went (pipeline run)")
    for name, micros in sorted(per_tick_us.items(), key=lambda item: -item[1]):
        table.add_row(name, f"{micros:.0f} µs", f"{micros * rate / 1e6:.2f}")
    total = sum(per_tick_us.values())
    table.add_row("all", f"{total:.0f} µs", f"{total * rate / 1e6:.2f} of {os.cpu_count()}")
    console.print(table)


# --- sections: `tickwatch bench --only NAME` --------------------------------------------------------------
