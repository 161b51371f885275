"""`tickwatch bench --only api`: the HTTP API's reads over the seeded 10 M-tick history, through the real app.

Its own module because several sections of the bench are written at once; `tickwatch.bench` runs it.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import httpx
from rich.console import Console
from rich.table import Table

from pipeline import history, store
from pipeline.settings import Settings
from tickwatch.bench import percentile
from tickwatch.seed import DAY, SEED_PREFIX, SeedSpec, ensure_history

BENCH_REDIS_DB = 63  # the bench's Redis database (tests lease 1..62)


def api_figures(settings: Settings, console: Console, *, requests: int = 200, spec: SeedSpec | None = None,
                prefix: str | None = None) -> dict[str, tuple[float, float]]:
    """`GET /v1/prices/{symbol}/ohlc?interval=1m` for one symbol-day (target p95 < 150 ms) and the first page of
    `GET /v1/anomalies` (target p95 < 50 ms) over the seeded history, through the real HTTP app: `tickwatch
    api` as its own process (uvicorn), called with httpx over loopback. Returns {measure: (p50, p95)} in ms."""
    indices = ensure_history(settings, spec or SeedSpec(), prefix=prefix or SEED_PREFIX, console=console)
    es = store.connect(settings)
    symbols = [info.symbol for info in history.known_symbols(es, indices, limit=5000)]
    ticks = es.count(index=indices.ticks)["count"]
    token = f"bench-{uuid.uuid4().hex}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TICKWATCH_INDEX_PREFIX": indices.prefix,
           "TICKWATCH_API_TOKENS": json.dumps([{"name": "bench", "token": token, "scope": "read"}]),
           "TICKWATCH_REDIS_URL": settings.redis_url.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"}
    server = subprocess.Popen([sys.executable, "-m", "tickwatch", "api", "--port", str(port), "--loglevel", "warning"],
                              env=env, stdout=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    rng = random.Random(11)
    day = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat(), "interval": "1m"}
    measures = {
        "ohlc 1m, one symbol-day": lambda: client.get(f"/v1/prices/{rng.choice(symbols)}/ohlc", params=day),
        "anomalies, first page": lambda: client.get("/v1/anomalies"),
    }
    figures: dict[str, tuple[float, float]] = {}
    try:
        _wait_answering(client, "/healthz", server)
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
        server.terminate()
        server.wait(timeout=10)
    big = ticks >= 10_000_000 and len(symbols) >= 500
    table = Table("measure", "p50", "p95", "target", "",
                  title=f"HTTP API over {ticks:,} ticks, {len(symbols):,} symbols ({requests} requests each)")
    for (name, (p50, p95)), target in zip(figures.items(), (150, 50), strict=True):
        verdict = "[yellow]history too small[/yellow]"
        if big:
            verdict = "[green]met[/green]" if p95 < target else "[red]missed[/red]"
        table.add_row(name, f"{p50:.1f} ms", f"{p95:.1f} ms", f"p95 < {target} ms", verdict)
    console.print(table)
    return figures


def _wait_answering(client: httpx.Client, path: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """Until the server started as `process` answers `path` (it fails at once if the process ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args))} exited with {process.returncode}")
        try:
            if client.get(path).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer {path} within {timeout:.0f} s")
