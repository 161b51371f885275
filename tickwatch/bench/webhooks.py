"""`tickwatch bench`, webhooks: detection -> delivery with 100 subscribers, one hanging and one answering 500.

The pipeline runs as in production (bridge, a prefork tick worker, threaded alerts workers) in a private
lane; one crash per symbol is paced about a second apart, and every healthy subscriber records when each
alert reached it. The figure is receipt time minus the anomaly's `detected_at` (same host clock).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

from rich.console import Console
from rich.table import Table

from pipeline.ingest.generator import Scenario, default_symbols, pace
from pipeline.ingest.publish import publish
from pipeline.settings import Settings
from pipeline.webhooks import subscriptions
from stack.webhook_receiver import HANG, WebhookReceiver
from tickwatch.bench.common import Lane, lane, percentile

LOOPBACK = '["127.0.0.0/8"]'  # the receivers are local: allow-listed on purpose
SPEED = 10  # event seconds per wall second


def webhook_latency(
    current: Lane, subscribers: int, alerts: int, alert_workers: int = 2
) -> tuple[list[float], dict[str, int]]:
    """Latencies (ms) from detection to receipt for each healthy subscriber and alert, and request counts."""
    current.fleet.env["TICKWATCH_WEBHOOK_ALLOW_NETWORKS"] = LOOPBACK
    settings = current.settings.model_copy(update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]})
    hanging, failing = WebhookReceiver(HANG), WebhookReceiver(500)
    healthy = [WebhookReceiver() for _ in range(subscribers - 2)]
    try:
        for receiver in (hanging, failing, *healthy):
            subscriptions.create(
                current.redis, settings, subscriptions.SubscriptionSpec(url=receiver.url, events=["anomaly.detected"])
            )
        symbols = default_symbols(alerts)
        events = [f"drop:{symbol}:8%:{SPEED}s@{60 + i * SPEED}s" for i, symbol in enumerate(symbols)]
        market = Scenario.build(
            symbols=symbols,
            start=datetime.now(UTC) - timedelta(hours=1),
            interval_s=1,
            seed=3,
            duration=f"{60 + (len(symbols) + 3) * SPEED}s",
            events=events,
        )
        current.fleet.split_workers(concurrency=2, alert_threads=8)
        for _ in range(alert_workers - 1):  # deliveries are CPU-bound Python: one process per core
            current.fleet.worker(8, "--queues", current.settings.alerts_queue, "--pool", "threads")
        current.fleet.bridge()
        time.sleep(3)
        publish(pace(market.ticks(), SPEED), current.settings, progress=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and min(len(r.receipts) for r in healthy) < alerts:
            time.sleep(0.2)
        samples = [(receipt.at - _detected_at(receipt.body)) * 1000 for r in healthy for receipt in r.receipts]
        counts = {
            "alerts": max(len(r.receipts) for r in healthy),
            "hanging": len(hanging.receipts),
            "failing": len(failing.receipts),
        }
        return samples, counts
    finally:
        for receiver in (hanging, failing, *healthy):
            receiver.close()


def _detected_at(body: bytes) -> float:
    return datetime.fromisoformat(json.loads(body)["data"]["detected_at"]).timestamp()


def webhook_figures(base: Settings, console: Console, *, subscribers: int = 100, alerts: int = 20) -> None:
    """Measure and print webhook delivery latency (target: p99 < 250 ms for the healthy subscribers)."""
    with lane(base, base.stack_dir / "logs", "webhooks") as current:
        samples, counts = webhook_latency(current, subscribers, alerts)
    table = Table(
        "measure", "figure", "target", "", title=f"webhooks: {subscribers} subscribers, one hanging, one answering 500"
    )
    if not samples:
        table.add_row("detection -> delivery", "no deliveries measured", "< 250 ms", "[red]missed[/red]")
    else:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        verdict = "[green]met[/green]" if p99 < 250 else "[red]missed[/red]"
        table.add_row(
            f"detection -> delivery p50 ({len(samples)} deliveries of {counts['alerts']} alerts)",
            f"{p50:.0f} ms",
            "",
            "",
        )
        table.add_row("detection -> delivery p99, healthy subscribers", f"{p99:.0f} ms", "< 250 ms", verdict)
        table.add_row(
            "requests to the hanging / the failing subscriber", f"{counts['hanging']} / {counts['failing']}", "", ""
        )
    console.print(table)
