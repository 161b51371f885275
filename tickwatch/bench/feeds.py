"""`tickwatch bench --only feeds`: what one feed health check costs with thousands of watched symbols.

The check reads every symbol's feed and every open episode from Redis, judges them against their markets'
sessions and writes what changed; it runs once per TICKWATCH_FEED_CHECK_SECONDS on one alerts worker. Measured
against the real Redis (the bench's database, emptied before and after): a quiet check (nothing changes) and
the check that finds half of the symbols silent at once.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

from redis import Redis
from rich.console import Console
from rich.table import Table

from pipeline import keys
from pipeline.feeds import watch
from pipeline.feeds.cadence import MIN_SAMPLES, Feed
from pipeline.settings import Settings
from tickwatch.bench.common import BENCH_REDIS_DB


def feed_check_figures(base: Settings, console: Console, *, symbols: int = 5_000, repeats: int = 7) -> dict[str, float]:
    host, port = base.redis_host_port
    settings = base.model_copy(update={"redis_url": f"redis://{host}:{port}/{BENCH_REDIS_DB}"})
    redis = Redis.from_url(settings.redis_url)
    redis.flushdb()
    now = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # a Friday with New York open: both calendars are checked
    fresh, gone = now - timedelta(seconds=1), now - timedelta(minutes=10)
    names = [f"S{i:04d}" + ("-USD" if i % 2 else "") for i in range(symbols)]

    def seed(silent: bool) -> None:
        redis.delete(keys.FEEDS, keys.FEED_EPISODES)
        feeds = {
            name: Feed(int(((gone if silent and i % 2 else fresh).timestamp()) * 1000), 0, 100.0, 1000.0, MIN_SAMPLES)
            for i, name in enumerate(names)
        }
        redis.hset(keys.FEEDS, mapping={name: feed.encode() for name, feed in feeds.items()})

    try:
        watch.check(redis, settings, now)  # builds the calendars once, as a worker's first check does
        quiet, finding = [], []
        for _ in range(repeats):
            seed(silent=False)
            started = time.perf_counter()
            watch.check(redis, settings, now)
            quiet.append((time.perf_counter() - started) * 1000)
            seed(silent=True)
            started = time.perf_counter()
            verdict = watch.check(redis, settings, now)
            finding.append((time.perf_counter() - started) * 1000)
        figures = {"quiet_ms": statistics.median(quiet), "finding_ms": statistics.median(finding)}
    finally:
        redis.flushdb()
    table = Table("check", "ms (median)", title=f"feed health check: {symbols:,} watched symbols (XNYS and 24/7)")
    table.add_row("nothing changed", f"{figures['quiet_ms']:.1f}")
    table.add_row(
        f"{len(verdict.stale):,} found silent at once (recorded, one feed-down message each calendar)",
        f"{figures['finding_ms']:.1f}",
    )
    console.print(table)
    return figures
