"""`tickwatch bench --only bot`: `/price SYMBOL 1h` over the seeded 10 M-tick history, through `tickwatch bot`.

The bot runs as its own process against the seed, its Web API and `response_url` answered by the local fake
Slack; each command is signed as Slack signs it. Two figures: the server time the bot logs for every command
(`/price answered in 12.3 ms`, see bot.timing), and the round trip from sending the command until its answer
reached the `response_url`.
"""

from __future__ import annotations

import random
import re
import time
import uuid

import httpx
from rich.console import Console
from rich.table import Table

from pipeline import history, store
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from stack.slack_requests import signed_headers, slash_command
from tickwatch.bench.common import BENCH_REDIS_DB, percentile
from tickwatch.bench.seed import SEED_PREFIX, SeedSpec, ensure_history
from tickwatch.fleet import Fleet, env_for

TARGET_P95_MS = 100
SERVER_TIME = re.compile(r"/price answered in ([0-9.]+) ms")


def bot_price_figures(
    settings: Settings,
    console: Console,
    *,
    requests: int = 200,
    spec: SeedSpec | None = None,
    prefix: str | None = None,
) -> dict[str, tuple[float, float]]:
    """p50 and p95 (ms) of `/price` for random seeded symbols: server time and round trip to the response_url."""
    indices = ensure_history(settings, spec or SeedSpec(), prefix=prefix or SEED_PREFIX, console=console)
    es = store.connect(settings)
    symbols = [info.symbol for info in history.known_symbols(es, indices, limit=5000)]
    ticks = es.count(index=indices.ticks)["count"]
    secret = uuid.uuid4().hex
    host, port = settings.redis_host_port
    rng = random.Random(12)
    round_trips: list[float] = []
    with FakeSlack() as slack:
        fleet = Fleet(
            env_for(
                {
                    "TICKWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
                    "TICKWATCH_ES_URL": settings.es_url,
                    "TICKWATCH_REDIS_URL": f"redis://{host}:{port}/{BENCH_REDIS_DB}",
                    "TICKWATCH_INDEX_PREFIX": indices.prefix,
                    "SLACK_BOT_TOKEN": "xoxb-bench",
                    "SLACK_SIGNING_SECRET": secret,
                    "TICKWATCH_SLACK_API_URL": slack.url,
                }
            ),
            settings.stack_dir / "logs" / f"bench-bot-{secret[:6]}",
        )
        server = fleet.serve("bot", "--log-level", "info")
        try:
            fleet.wait_ready(server)
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for i in range(requests + 10):  # the first 10 warm caches and connections and are not counted
                    hook = f"price-{i}"
                    body = slash_command(
                        "/price",
                        f"{rng.choice(symbols)} 1h",
                        user="U0BENCH001",
                        channel="C0BENCH001",
                        response_url=slack.response_url(hook),
                    )
                    started = time.perf_counter()
                    ack = client.post("/slack/events", content=body, headers=signed_headers(secret, body))
                    if ack.status_code != 200:
                        raise RuntimeError(f"/price: {ack.status_code} {ack.text[:300]}")
                    _wait_for_answer(slack, hook)
                    if i >= 10:
                        round_trips.append((time.perf_counter() - started) * 1000)
        finally:
            fleet.stop_all()
    server_times = [float(ms) for ms in SERVER_TIME.findall(server.log.read_text(errors="replace"))][10:]
    if not server_times:
        raise RuntimeError(f"the bot logged no '/price answered in' line; see {server.log}")
    figures = {
        "/price server time": (percentile(server_times, 50), percentile(server_times, 95)),
        "/price round trip to the response_url": (percentile(round_trips, 50), percentile(round_trips, 95)),
    }
    big = ticks >= 10_000_000 and len(symbols) >= 500
    table = Table(
        "measure",
        "p50",
        "p95",
        "target",
        "",
        title=f"Slack bot over {ticks:,} ticks, {len(symbols):,} symbols ({requests} commands)",
    )
    for name, (p50, p95) in figures.items():
        target, verdict = "", ""
        if name == "/price server time":
            target = f"p95 < {TARGET_P95_MS} ms"
            verdict = "[yellow]history too small[/yellow]"
            if big:
                verdict = "[green]met[/green]" if p95 < TARGET_P95_MS else "[red]missed[/red]"
        table.add_row(name, f"{p50:.1f} ms", f"{p95:.1f} ms", target, verdict)
    console.print(table)
    return figures


def _wait_for_answer(slack: FakeSlack, hook: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(call.params.get("_name") == hook for call in slack.calls("response_url")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer on the response_url of {hook} within {timeout:.0f}s")
        time.sleep(0.002)
