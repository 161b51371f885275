"""`tickwatch bench --only api`: the HTTP API's reads over the seeded 10 M-tick history, through the real app.

Its own module because several sections of the bench are written at once; `tickwatch.bench` runs it.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import timedelta

import httpx
from rich.console import Console
from rich.table import Table

from pipeline import history, store
from pipeline.settings import Settings
from tickwatch.bench.common import percentile
from tickwatch.bench.seed import DAY, SEED_PREFIX, SeedSpec, ensure_history
from tickwatch.fleet import Fleet, env_for

BENCH_REDIS_DB = 63  # the bench's Redis database (tests lease 1..62)


def api_figures(
    settings: Settings,
    console: Console,
    *,
    requests: int = 200,
    spec: SeedSpec | None = None,
    prefix: str | None = None,
) -> dict[str, tuple[float, float]]:
    """`GET /v1/prices/{symbol}/ohlc?interval=1m` for one symbol-day (target p95 < 150 ms) and the first page of
    `GET /v1/anomalies` (target p95 < 50 ms) over the seeded history, through the real HTTP app: `tickwatch
    api` as its own process (uvicorn), called with httpx over loopback. Returns {measure: (p50, p95)} in ms."""
    indices = ensure_history(settings, spec or SeedSpec(), prefix=prefix or SEED_PREFIX, console=console)
    es = store.connect(settings)
    symbols = [info.symbol for info in history.known_symbols(es, indices, limit=5000)]
    ticks = es.count(index=indices.ticks)["count"]
    token = f"bench-{uuid.uuid4().hex}"
    host, port = settings.redis_host_port
    fleet = Fleet(
        env_for(
            {
                "TICKWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                "TICKWATCH_ES_URL": settings.es_url,
                "TICKWATCH_REDIS_URL": f"redis://{host}:{port}/{BENCH_REDIS_DB}",
                "TICKWATCH_INDEX_PREFIX": indices.prefix,
                "TICKWATCH_API_TOKENS": json.dumps([{"name": "bench", "token": token, "scope": "read"}]),
            }
        ),
        settings.stack_dir / "logs" / f"bench-api-{token[-6:]}",
    )
    server = fleet.serve("api", "--loglevel", "warning")
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"})
    rng = random.Random(11)
    day = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat(), "interval": "1m"}
    measures = {
        "ohlc 1m, one symbol-day": lambda: client.get(f"/v1/prices/{rng.choice(symbols)}/ohlc", params=day),
        "anomalies, first page": lambda: client.get("/v1/anomalies"),
    }
    figures: dict[str, tuple[float, float]] = {}
    try:
        fleet.wait_ready(server)
        for name, call in measures.items():
            samples = []
            for i in range(requests + 10):  # the first 10 warm caches and connections and are not counted
                started = time.perf_counter()
                response = call()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                if i >= 10:
                    samples.append(elapsed)
            figures[name] = (percentile(samples, 50), percentile(samples, 95))
    finally:
        client.close()
        fleet.stop_all()
    big = ticks >= 10_000_000 and len(symbols) >= 500
    table = Table(
        "measure",
        "p50",
        "p95",
        "target",
        "",
        title=f"HTTP API over {ticks:,} ticks, {len(symbols):,} symbols ({requests} requests each)",
    )
    for (name, (p50, p95)), target in zip(figures.items(), (150, 50), strict=True):
        verdict = "[yellow]history too small[/yellow]"
        if big:
            verdict = "[green]met[/green]" if p95 < target else "[red]missed[/red]"
        table.add_row(name, f"{p50:.1f} ms", f"{p95:.1f} ms", f"p95 < {target} ms", verdict)
    console.print(table)
    return figures
