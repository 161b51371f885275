"""`tickwatch bench` and `tickwatch seed`: the figures, and the big history the read-side figures need."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings
from tickwatch.commands import clear_leftovers
from tickwatch.commands.stack import stack_up
from tickwatch.leftovers import ended_by_signals

console = Console()


def bench(
    ticks: Annotated[int, typer.Option(help="ticks for the throughput runs")] = 200_000,
    naive_ticks: Annotated[int, typer.Option(help="ticks for the one-task-per-tick baseline (it is slow)")] = 5_000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="children per worker process")] = 2,
    rate: Annotated[int, typer.Option(help="ticks/s for the alert latency run")] = 1_000,
    seconds: Annotated[int, typer.Option(help="length of the alert latency run")] = 60,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="run only this section (repeatable): pipeline, api, bot, digest, storm, detection, "
            "webhooks, feeds, ingest; default: all",
        ),
    ] = None,
) -> None:
    """Measure throughput and latency on the local stack and print the figures.

    Each section runs in private topics, indices and Redis db, removed afterwards:
    [bold]pipeline[/bold]: raw consume rate, pipeline rate, naive baseline, ratios, alert latency p50/p99
    [bold]api[/bold]: the HTTP API's reads over the seeded history (`tickwatch seed`, made on first use)
    [bold]bot[/bold]: /price over the seeded history, server time and round trip to the response_url
    [bold]digest[/bold]: the daily digest of the seeded day
    [bold]storm[/bold]: 200 alerts to one Slack channel, grouped
    [bold]detection[/bold]: detection's cost per tick by rule set (quick: no stack)
    [bold]webhooks[/bold]: alerts delivered to 100 webhook subscribers
    [bold]feeds[/bold]: one feed health check over 5 000 watched symbols
    [bold]ingest[/bold]: exchange trades to Kafka through one `tickwatch ingest` (local replay server)

    Examples: [bold]tickwatch bench --ticks 100000[/bold], [bold]tickwatch bench --only detection[/bold]
    """
    from tickwatch.bench import run as bench_module

    stack_up()
    clear_leftovers(console)
    try:
        with ended_by_signals():
            bench_module.run_sections(
                get_settings(),
                console,
                only or (),
                ticks=ticks,
                naive_ticks=naive_ticks,
                workers=workers,
                concurrency=concurrency,
                rate=rate,
                seconds=seconds,
            )
    except ValueError as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(2) from None


def seed(
    symbols: Annotated[int, typer.Option(help="symbols in the history")] = 500,
    ticks_per_symbol: Annotated[int, typer.Option(help="ticks per symbol (one day, every 4 s: 20 000)")] = 20_000,
    prefix: Annotated[str, typer.Option(help="index prefix of the seed")] = "tickwatch-seed",
) -> None:
    """Load a big stored history into Elasticsearch for the benches (idempotent: a complete one is reused).

    Defaults: 10 M ticks over 500 symbols and 2 000 anomalies, in the indices tickwatch-seed-*.

    Example: [bold]tickwatch seed[/bold]
    """
    from tickwatch.bench.seed import SeedSpec, ensure_history

    spec = SeedSpec(symbols=symbols, ticks_per_symbol=ticks_per_symbol)
    indices = ensure_history(get_settings(), spec, prefix=prefix, console=console)
    console.print(f"[green]✔[/green] history ready: {indices.ticks}, {indices.anomalies}")


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(seed)
