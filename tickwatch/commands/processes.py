"""The pipeline's long-running processes: `tickwatch worker` and `tickwatch bridge`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings

console = Console()


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="processes (or threads)")] = 2,
    queues: Annotated[str, typer.Option(help="queues to consume, default both: ticks,alerts")] = "",
    pool: Annotated[
        str, typer.Option(help="prefork for ticks (CPU-bound), threads for alerts (I/O-bound)")
    ] = "prefork",
    loglevel: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run a Celery worker: applies tick batches (detect, index, alert) and delivers alerts.

    Run as many as you like; results do not depend on how many (see docs/detection.md). For the lowest
    alert latency give deliveries their own worker, so they never queue behind tick batches.

    Examples:
      [bold]tickwatch worker -c 2 --queues ticks[/bold]
      [bold]tickwatch worker -c 8 --queues alerts --pool threads[/bold]
    """
    from pipeline.alerting.tasks import warm_up
    from pipeline.worker.app import app as celery_app

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


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(bridge)
