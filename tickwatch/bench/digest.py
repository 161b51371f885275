"""`tickwatch bench --only digest`: the daily digest of the seeded 10 M-tick day, in all and query by query.

Its own module because several sections of the bench are written at once; `tickwatch.bench` runs it.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from pipeline import store
from pipeline.digest import summary as digest
from pipeline.settings import Settings
from tickwatch.bench.seed import DAY, SEED_PREFIX, SeedSpec, ensure_history


def digest_figures(
    settings: Settings, console: Console, *, spec: SeedSpec | None = None, prefix: str | None = None
) -> tuple[float, dict[str, float]]:
    """`pipeline.digest.build` of the seeded history's day (target: < 30 s at >= 10 M ticks over >= 500 symbols);
    nothing is posted. Returns (seconds in all, ms per query)."""
    indices = ensure_history(settings, spec or SeedSpec(), prefix=prefix or SEED_PREFIX, console=console)
    utc = settings.model_copy(update={"digest_tz": "UTC"})  # the seed's day is a UTC day
    es = store.connect(settings)
    # A digest runs once a day, so cold: empty the shard request cache, which would answer a repeat at once.
    es.indices.clear_cache(index=f"{indices.prefix}-*", request=True)
    started = time.perf_counter()
    summary = digest.build(es, indices, utc, DAY.date())
    seconds = time.perf_counter() - started
    verdict = "[yellow]day too small[/yellow]"
    if summary.ticks >= 10_000_000 and summary.symbols >= 500:
        verdict = "[green]met[/green]" if seconds < 30 else "[red]missed[/red]"
    table = Table(
        "query",
        "time",
        title=f"daily digest of {DAY:%Y-%m-%d}: {summary.ticks:,} ticks, "
        f"{summary.symbols:,} symbols, {summary.anomalies_total:,} anomalies",
    )
    for step, ms in sorted(summary.timings_ms.items(), key=lambda item: -item[1]):
        table.add_row(step, f"{ms / 1000:.2f} s")
    table.add_row("all (target < 30 s)", f"{seconds:.2f} s  {verdict}")
    console.print(table)
    return seconds, summary.timings_ms
