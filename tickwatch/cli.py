"""`tickwatch`: the one command line for the stack, the pipeline's processes, the demo and the bench."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from pipeline.settings import get_settings
from tickwatch.commands import api as api_command
from tickwatch.commands import bot as bot_command
from tickwatch.commands import controls as controls_command
from tickwatch.commands import digest as digest_command
from tickwatch.commands import generate as generate_command
from tickwatch.errors import DEBUG_ENV

# The order `tickwatch --help` lists the commands in: as a newcomer meets them (start, run, operate, maintain).
# A command not named here is listed after these.
COMMAND_ORDER = (
    "stack",
    "demo",
    "generate",
    "worker",
    "bridge",
    "api",
    "bot",
    "digest",
    "mute",
    "unmute",
    "mutes",
    "threshold",
    "audit",
    "bench",
    "seed",
    "token",
    "retention",
)


class _NewcomerOrder(TyperGroup):
    """Lists commands in COMMAND_ORDER instead of the order the modules happen to register them in."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        rank = {name: place for place, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    help="Tickwatch: real-time market surveillance, alerts in Slack.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=_NewcomerOrder,
)
stack_app = typer.Typer(
    help="The local real stack: Kafka, Elasticsearch and Redis on loopback, no Docker.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
controls_command.register(app)
digest_command.register(app)
generate_command.register(app)
bot_command.register(app)
api_command.register(app)
console = Console()


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"show the traceback when a command fails (or {DEBUG_ENV}=1)")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by tickwatch.errors, and inherited by the processes commands start


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@stack_app.command("up")
def stack_up() -> None:
    """Start Redis, Kafka and Elasticsearch (downloading them once), then create topics and indices.

    Idempotent: running it again leaves running servers alone.

    Example: [bold]tickwatch stack up[/bold]
    """
    from stack import StackError, all_services

    settings = get_settings()
    try:
        for service in all_services(settings):
            with console.status(f"Starting {service.name} on {service.address}…"):
                outcome = service.up()
            console.print(f"[green]✔[/green] {service.name} {service.version() or ''} on {service.address}: {outcome}")
    except StackError as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(1) from None
    stack_init()


@stack_app.command("init")
def stack_init() -> None:
    """Create the Kafka topics and Elasticsearch templates (for servers started elsewhere, e.g. Compose).

    Example: [bold]docker compose up -d && tickwatch stack init[/bold]
    """
    from pipeline import store
    from pipeline.ingest.topics import ensure_topics

    settings = get_settings()
    created = ensure_topics(settings)
    es = store.connect(settings)
    store.ensure_templates(es, store.Indices(settings.index_prefix))
    news = f" (created {', '.join(created)})" if created else ""
    console.print(f"[green]✔[/green] topics ready{news}; index templates for {settings.index_prefix}-* installed")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the servers `stack up` started (anything else on those ports is left alone). Data is kept.

    Example: [bold]tickwatch stack down[/bold]
    """
    from stack import all_services

    for service in reversed(all_services(get_settings())):
        stopped = service.down()
        console.print(f"{service.name}: {'stopped' if stopped else 'was not running (from tickwatch)'}")


@stack_app.command("status")
def stack_status() -> None:
    """Show each server with its version and address.

    Example: [bold]tickwatch stack status[/bold]
    """
    from stack import all_services

    table = Table("service", "address", "state", "version", "pid")
    for service in all_services(get_settings()):
        ready = service.ready()
        pid = service.proc.pid()
        table.add_row(
            service.name,
            service.address,
            "[green]ready[/green]" if ready else "[red]down[/red]",
            (service.version() if ready else None) or "-",
            str(pid) if pid else "-",
        )
    console.print(table)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="processes (or threads)")] = 2,
    queues: Annotated[str, typer.Option(help="queues to consume, default both: ticks,alerts")] = "",
    pool: Annotated[
        str, typer.Option(help="prefork for ticks (CPU-bound), threads for alerts (I/O-bound)")
    ] = "prefork",
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker: applies tick batches (detect, index, alert) and delivers alerts.

    Run as many as you like; results do not depend on how many (see README, Guarantees). For the lowest
    alert latency give deliveries their own worker, so they never queue behind tick batches.

    Examples:
      [bold]tickwatch worker -c 2 --queues ticks[/bold]
      [bold]tickwatch worker -c 8 --queues alerts --pool threads[/bold]
    """
    from pipeline.worker.batches import app as celery_app
    from pipeline.worker.batches import warm_up

    settings = get_settings()
    names = queues or f"{settings.celery_queue},{settings.alerts_queue}"
    if pool == "threads":
        warm_up()  # threads run in this process; prefork children warm up as they start
    celery_app.worker_main(
        [
            "worker",
            "-Q",
            names,
            "-c",
            str(concurrency),
            "-P",
            pool,
            "--loglevel",
            loglevel,
            "-n",
            f"tickwatch-{os.getpid()}@%h",
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@app.command()
def bridge(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Consume `financial_prices` and hand batches to the workers; SIGTERM finishes the batch and exits.

    Serves its own Prometheus metrics on TICKWATCH_METRICS_PORT (default 9464; taken by another bridge: a free
    port, logged; 0 = off). Every bridge's and worker's figures are also in `tickwatch api`'s /metrics.

    Example: [bold]tickwatch bridge[/bold]
    """
    from pipeline.ingest.bridge import Bridge
    from pipeline.metrics import serve_process_metrics

    _logging(loglevel)
    settings = get_settings()
    if settings.metrics_port:
        port = serve_process_metrics(settings.metrics_port)
        logging.getLogger("tickwatch.bridge").info("this bridge's metrics: http://127.0.0.1:%d/metrics", port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"bridge: {settings.ticks_topic} → Celery queue {settings.celery_queue!r}; Ctrl-C to stop")
    Bridge(settings, stop=stop).run()


@app.command()
def retention(
    days: Annotated[
        int | None, typer.Option(min=1, help="keep this many days (default TICKWATCH_TICK_RETENTION_DAYS)")
    ] = None,
) -> None:
    """Delete daily tick indices older than N days (anomalies are kept).

    Example: [bold]tickwatch retention --days 7[/bold]
    """
    from pipeline import store

    settings = get_settings()
    dropped = store.drop_expired_ticks(
        store.connect(settings), store.Indices(settings.index_prefix), days or settings.tick_retention_days
    )
    console.print(
        f"deleted {len(dropped)} tick {'index' if len(dropped) == 1 else 'indices'}"
        + (f": {', '.join(dropped)}" if dropped else "")
    )


@app.command()
def demo(
    symbols: Annotated[int, typer.Option("--symbols", "-n", help="symbols in the market")] = 12,
    speed: Annotated[
        str, typer.Option(help="replay speed: max, or a factor such as 60", callback=generate_command.check_speed)
    ] = "max",
    workers: Annotated[int, typer.Option(help="worker processes to start (2 children each)")] = 1,
    seed: Annotated[int, typer.Option(help="random seed of the market")] = 7,
    hold: Annotated[
        bool | None,
        typer.Option(
            "--hold/--no-hold",
            help="keep the API and bot up after the tour until Enter (default: when run in a terminal)",
        ),
    ] = None,
) -> None:
    """The live demo: a replayed market with injected crashes, then a tour of every front-end.

    Starts the stack, workers, the bridge, the HTTP API and the Slack bot; replays 30 minutes of a market with
    injected crashes, shows throughput, lag and alerts live, then injected vs detected, and a tour: the Slack
    alert, a signed Acknowledge click, /price, a signed webhook delivery and the daily digest.

    Works offline: with no SLACK_BOT_TOKEN, Slack messages go to a local fake Slack Web API and are shown.

    Example: [bold]tickwatch demo --symbols 20[/bold]
    """
    import sys

    from pipeline.ingest.generator import parse_speed
    from tickwatch.demo import run as demo_module

    stack_up()
    demo_module.run(
        get_settings(),
        console,
        symbols=symbols,
        speed=parse_speed(speed),
        workers=workers,
        seed=seed,
        hold=sys.stdin.isatty() and console.is_terminal if hold is None else hold,
    )


@app.command()
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
            "webhooks; default: all",
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

    Examples: [bold]tickwatch bench --ticks 100000[/bold], [bold]tickwatch bench --only detection[/bold]
    """
    from tickwatch.bench import pipeline as bench_module

    stack_up()
    try:
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
