"""The pipeline's long-running processes: `tickwatch worker` and `tickwatch bridge`."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings

console = Console()


LogLevel = Annotated[
    str | None,
    typer.Option(
        "--log-level", "--loglevel", help="DEBUG, INFO, WARNING or ERROR (default: TICKWATCH_LOG_LEVEL, INFO)"
    ),
]


DELIVERY_THREADS = 8


def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="processes (or threads) of this pool")] = 2,
    queues: Annotated[
        str, typer.Option(help="one queue (ticks or alerts); default: both, each in a pool of its own")
    ] = "",
    pool: Annotated[
        str, typer.Option(help="prefork for ticks (CPU-bound), threads for alerts (I/O-bound)")
    ] = "prefork",
    delivery_threads: Annotated[
        int, typer.Option(help="threads of the alerts pool when both pools run (no --queues)")
    ] = DELIVERY_THREADS,
    log_level: LogLevel = None,
) -> None:
    """Run Celery workers: tick batches (detect, index, hand alerts on) and deliveries (Slack, Kafka, webhooks).

    Tick batches and deliveries never share a pool, so nothing Slack or a webhook receiver does can slow tick
    processing: with no --queues this starts both pools (ticks: -c processes; alerts: --delivery-threads
    threads) and stops both on SIGTERM. Run as many as you like; results do not depend on how many (see
    docs/detection.md).

    Examples:
      [bold]tickwatch worker[/bold]                                   both pools
      [bold]tickwatch worker -c 2 --queues ticks[/bold]               tick batches only
      [bold]tickwatch worker -c 8 --queues alerts --pool threads[/bold]   deliveries only
    """
    settings = get_settings()
    loglevel = (log_level or settings.log_level).upper()
    chosen = [name.strip() for name in queues.split(",") if name.strip()]
    if not chosen:
        raise typer.Exit(_both_pools(concurrency, delivery_threads, loglevel))
    if settings.celery_queue in chosen and len(chosen) > 1:
        console.print(
            f"[red]✘ tick batches ({settings.celery_queue}) share no pool with anything else: run `tickwatch worker` "
            f"(both, each in its own pool) or one worker per queue (--queues {settings.celery_queue} and "
            f"--queues {settings.alerts_queue} --pool threads)[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    _pool(",".join(chosen), concurrency, pool, loglevel)


def _pool(queues: str, concurrency: int, pool: str, loglevel: str) -> None:
    from pipeline.alerting.tasks import warm_up as channels_ready
    from pipeline.webhooks.delivery import warm_up as webhooks_ready
    from pipeline.worker.app import app as celery_app

    if pool == "threads":  # threads run in this process; prefork children warm up as they start
        channels_ready()
        webhooks_ready()
    celery_app.worker_main(
        [
            "worker",
            "-Q",
            queues,
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


def _both_pools(concurrency: int, threads: int, loglevel: str) -> int:
    """Run the ticks pool and the alerts pool as two child processes; a signal stops both, and when one ends the
    other is stopped. Returns the exit code to end with."""
    settings = get_settings()
    own = [sys.executable, "-m", "tickwatch", "worker", "--loglevel", loglevel]
    children = [
        subprocess.Popen([*own, "--queues", settings.celery_queue, "-c", str(concurrency)]),
        subprocess.Popen([*own, "--queues", settings.alerts_queue, "--pool", "threads", "-c", str(threads)]),
    ]
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    while all(child.poll() is None for child in children):
        stopping.wait(0.5)
    for child in children:
        if child.poll() is None:
            child.terminate()
    codes = [child.wait() for child in children]
    return 0 if stopping.is_set() else next((code for code in codes if code), 0)


def bridge(log_level: LogLevel = None) -> None:
    """Consume `financial_prices` and hand batches to the workers; SIGTERM finishes the batch and exits.

    A daemon: it waits out Kafka or Redis being away, at start or later (one log line when it goes, one when it
    is back), and exits only if the ticks topic does not exist.

    Serves its own Prometheus metrics on TICKWATCH_METRICS_PORT (default 9464; taken by another bridge: a free
    port, logged; 0 = off). Every bridge's and worker's figures are also in `tickwatch api`'s /metrics.

    Example: [bold]tickwatch bridge[/bold]
    """
    from pipeline import logs
    from pipeline.ingest.bridge import Bridge, MissingTopic
    from pipeline.metrics import serve_process_metrics

    settings = get_settings()
    logs.configure(settings, log_level)
    if settings.metrics_port:
        port = serve_process_metrics(settings.metrics_port)
        logging.getLogger("tickwatch.bridge").info("this bridge's metrics: http://127.0.0.1:%d/metrics", port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"bridge: {settings.ticks_topic} → Celery queue {settings.celery_queue!r}; Ctrl-C to stop")
    try:
        Bridge(settings, stop=stop).run()
    except MissingTopic as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(bridge)
