"""`tickwatch bench`, webhooks: detection -> delivery with 100 subscribers, 40 of them hostile, and what they
cost the tick pipeline.

Of the 100 subscribers, 10 trickle their headers a byte at a time, 10 hang, 10 answer 500 and 10 refuse
connections; 60 are healthy. The pipeline runs as in production (bridge, a prefork tick worker, threaded alerts
workers, one per core) in a private lane, working through a backlog of ticks while one crash per symbol is
paced about a second apart; every healthy subscriber records when each alert reached it: the figure is receipt
time minus the anomaly's `detected_at` (same host clock). The same run without subscribers, in a fresh lane,
gives the tick rate to compare with: the deliveries must not slow tick processing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

from rich.console import Console
from rich.table import Table

from pipeline.detect import state
from pipeline.ingest.generator import Scenario, default_symbols, pace
from pipeline.ingest.publish import publish
from pipeline.settings import Settings
from pipeline.webhooks import subscriptions
from stack.webhook_receiver import HANG, TRICKLE, Reply, WebhookReceiver
from tickwatch.bench.common import BENCH_SYMBOLS, Lane, lane, percentile

LOOPBACK = '["127.0.0.0/8"]'  # the receivers are local: allow-listed on purpose
SPEED = 10  # event seconds per wall second
HOSTILE = 10  # subscribers of each hostile kind
RATE_TICKS = 100_000
LEAD_S = 60  # event seconds of history before the first crash


class Subscribers:
    """The hundred receivers: healthy ones, and HOSTILE each trickling, hanging, failing and refusing."""

    def __init__(self, stack: ExitStack, total: int) -> None:
        self.healthy = [stack.enter_context(WebhookReceiver()) for _ in range(total - 4 * HOSTILE)]
        self.hostile = {
            "trickling": [stack.enter_context(WebhookReceiver(TRICKLE)) for _ in range(HOSTILE)],
            "hanging": [stack.enter_context(WebhookReceiver(HANG)) for _ in range(HOSTILE)],
            "failing": [stack.enter_context(WebhookReceiver(Reply(500))) for _ in range(HOSTILE)],
        }
        self.refused = [_closed_port_url() for _ in range(HOSTILE)]

    def subscribe(self, current: Lane) -> None:
        current.fleet.env["TICKWATCH_WEBHOOK_ALLOW_NETWORKS"] = LOOPBACK
        settings = current.settings.model_copy(update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]})
        urls = [r.url for r in self.healthy] + [r.url for kind in self.hostile.values() for r in kind] + self.refused
        for url in urls:
            spec = subscriptions.SubscriptionSpec(url=url, events=["anomaly.detected"])
            subscriptions.create(current.redis, settings, spec)

    def requests(self) -> dict[str, int]:
        return {kind: sum(len(r.receipts) for r in receivers) for kind, receivers in self.hostile.items()}


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/hook"


def crashes(symbols: list[str], *, step_s: int) -> list[str]:
    return [f"drop:{symbol}:8%:{step_s}s@{LEAD_S + i * step_s}s" for i, symbol in enumerate(symbols)]


def measured_run(current: Lane, subscribers: Subscribers | None, alerts: int) -> tuple[list[float], float]:
    """Crashes paced about a second apart while the pipeline works through a backlog of RATE_TICKS ticks of
    other symbols: the healthy subscribers' latencies (ms) and the pipeline's tick rate meanwhile."""
    if subscribers is not None:
        subscribers.subscribe(current)
    backlog = Scenario.build(
        symbols=[f"BG{n}" for n in range(BENCH_SYMBOLS)],
        start=datetime.now(UTC) - timedelta(hours=2),
        interval_s=1,
        count=RATE_TICKS,
        seed=1,
        duration=f"{RATE_TICKS // BENCH_SYMBOLS + 1}s",
    )
    publish(backlog.ticks(), current.settings, progress=False)
    symbols = default_symbols(alerts)
    market = Scenario.build(
        symbols=symbols,
        start=datetime.now(UTC) - timedelta(hours=1),
        interval_s=1,
        seed=3,
        duration=f"{LEAD_S + (len(symbols) + 3) * SPEED}s",
        events=crashes(symbols, step_s=SPEED),
    )
    current.fleet.split_workers(concurrency=2, alert_threads=8)
    current.fleet.worker(8, "--queues", current.settings.alerts_queue, "--pool", "threads")  # one per core
    time.sleep(3)
    current.fleet.bridge()
    paced = threading.Thread(
        target=publish, args=(pace(market.ticks(), SPEED), current.settings), kwargs={"progress": False}
    )
    paced.start()
    rate = _backlog_rate(current)
    paced.join()
    healthy = subscribers.healthy if subscribers is not None else []
    deadline = time.monotonic() + 30
    while healthy and time.monotonic() < deadline and min(len(r.receipts) for r in healthy) < alerts:
        time.sleep(0.2)
    return [(receipt.at - _detected_at(receipt.body)) * 1000 for r in healthy for receipt in r.receipts], rate


def _backlog_rate(current: Lane) -> float:
    """Ticks applied per second from the first applied until the backlog is through."""
    redis = current.redis
    while not state.stats(redis).get("ticks"):
        time.sleep(0.01)
    started, before = time.perf_counter(), state.stats(redis)["ticks"]
    while (applied := state.stats(redis).get("ticks", 0)) < RATE_TICKS:
        time.sleep(0.02)
    return (applied - before) / (time.perf_counter() - started)


def _detected_at(body: bytes) -> float:
    return datetime.fromisoformat(json.loads(body)["data"]["detected_at"]).timestamp()


def webhook_figures(base: Settings, console: Console, *, subscribers: int = 100, alerts: int = 20) -> None:
    """Measure and print webhook delivery latency (target: p99 < 250 ms for the healthy subscribers) and the
    tick rate with and without the subscribers (target: within 10 %)."""
    logs = base.stack_dir / "logs"
    with ExitStack() as stack:
        receivers = Subscribers(stack, subscribers)
        with lane(base, logs, "webhooks") as current:
            samples, beside = measured_run(current, receivers, alerts)
        hostile = receivers.requests()
        with lane(base, logs, "webhooks-alone") as current:
            _, alone = measured_run(current, None, alerts)
    table = Table(
        "measure",
        "figure",
        "target",
        "",
        title=f"webhooks: {subscribers} subscribers, {HOSTILE} each trickling, hanging, failing and refusing",
    )
    if not samples:
        table.add_row("detection -> delivery", "no deliveries measured", "< 250 ms", "[red]missed[/red]")
    else:
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        table.add_row(f"detection -> delivery p50 ({len(samples)} deliveries, healthy subscribers)", f"{p50:.0f} ms")
        table.add_row(
            "detection -> delivery p99, healthy subscribers", f"{p99:.0f} ms", "< 250 ms", _verdict(p99 < 250)
        )
    table.add_row("requests to the trickling / hanging / failing", " / ".join(str(n) for n in hostile.values()))
    change = (beside - alone) / alone * 100
    table.add_row("tick rate without subscribers", f"{alone:,.0f} ticks/s")
    table.add_row(
        "tick rate with the hundred",
        f"{beside:,.0f} ticks/s ({change:+.1f} %)",
        "within 10 %",
        _verdict(change >= -10),
    )
    console.print(table)


def _verdict(met: bool) -> str:
    return "[green]met[/green]" if met else "[red]missed[/red]"
