"""`tickwatch demo`: the whole pipeline, live, on the local real stack, with or without a Slack token.

It starts the HTTP API and the Slack bot next to the pipeline, replays a scenario with injected crashes
through Kafka, a bridge and Celery workers, shows throughput, lag and alerts as they happen, compares what
was injected with what was detected, then tours the front-ends (`tickwatch.tour`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from elasticsearch import Elasticsearch
from kafka import KafkaConsumer
from redis import Redis
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline import store
from pipeline.detect import state
from pipeline.ingest.continuity import going_on, skip_backlog
from pipeline.ingest.generator import Scenario, default_symbols, load_scenario, pace
from pipeline.ingest.publish import publish
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from tickwatch.demo import market_acts, market_move_act, tour
from tickwatch.fleet import Fleet, env_for, pending
from tickwatch.leftovers import RunLog

DEMO_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.toml"


def demo_scenario(redis: Redis, symbols: int, seed: int) -> Scenario:
    """The scripted moves of scenarios/demo.toml over `symbols` symbols: 30 minutes of market ending about
    now, or going on from where the stored market stands (pipeline.ingest.continuity: time and prices)."""
    script = load_scenario(DEMO_SCENARIO)
    names = list(dict.fromkeys(default_symbols(symbols) + [event.symbol for event in script.events]))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=script.duration_s)
    return going_on(redis, replace(script, symbols=tuple(names), start=start, seed=seed))


def _stats_table(current: dict[str, int], base: dict[str, int], lag: int, rate: float, published: int) -> Table:
    table = Table(title="Tickwatch demo — live", show_header=False, min_width=48)
    delta = {key: current.get(key, 0) - base.get(key, 0) for key in current}
    table.add_row("published to Kafka", f"{published:,}")
    table.add_row("applied by workers", f"{delta.get('ticks', 0):,}")
    table.add_row("throughput", f"{rate:,.0f} ticks/s")
    table.add_row("lag (not yet applied)", f"{lag:,}")
    table.add_row("dead-lettered", f"{delta.get('dead_lettered', 0):,}")
    table.add_row("late (beyond lateness)", f"{delta.get('late', 0):,}")
    table.add_row("alerts sent", f"[bold red]{delta.get('alerts', 0)}[/bold red]")
    return table


def run(
    settings: Settings,
    console: Console,
    *,
    symbols: int,
    speed: float | None,
    workers: int,
    seed: int,
    hold: bool = False,
) -> None:
    """The demo; with `hold`, the API and the bot stay up after the tour until Enter is pressed."""
    redis = Redis.from_url(settings.redis_url)
    scenario = demo_scenario(redis, symbols, seed)
    es = store.connect(settings)
    log_dir = settings.stack_dir / "logs" / "demo"
    offline = not settings.slack_bot_token
    # With a real token the fake only receives the bot's response_url answers (Slack's own would go to Slack).
    slack = FakeSlack(record_to=log_dir / "slack-calls.jsonl")
    values = tour.fleet_env() | market_move_act.benchmarks_env()
    channel = _run_channel() if offline else None
    if offline:
        values |= {
            "SLACK_BOT_TOKEN": "xoxb-offline-demo",
            "TICKWATCH_SLACK_API_URL": slack.start(),
            "TICKWATCH_SLACK_CHANNEL": channel or "",
        }
        console.print(
            f"No SLACK_BOT_TOKEN: Slack messages go to {channel} in a local fake Slack Web API at {slack.url}"
        )
    else:
        slack.start()
        console.print(f"SLACK_BOT_TOKEN is set: alerts go to {settings.slack_channel} in your Slack workspace")
    fleet = Fleet(env_for({**_tickwatch_env(), **values}), log_dir, run_log=RunLog(settings.stack_dir, "demo"))
    base = state.stats(redis)
    published = [0]
    front = None

    def produce() -> None:
        published[0] = publish(pace(scenario.ticks(), speed), settings, progress=False)

    try:
        skipped = skip_backlog(settings, redis)
        if skipped:
            console.print(
                f"{skipped:,} ticks others left unread on {settings.ticks_topic} are skipped: the demo counts, "
                "alerts on and shows only its own replay"
            )
        fleet.split_workers(workers)
        fleet.bridge(TICKWATCH_METRICS_PORT="0")
        front = tour.start(fleet, slack, offline, console)
        market_acts.run(console, settings, redis, slack, offline)  # before the replay's alerts make a storm
        producer = threading.Thread(target=produce, daemon=True)
        started = time.monotonic()
        producer.start()
        _live(console, redis, settings, base, producer, scenario.tick_count, started)
        _settle(redis, settings.alerts_queue)
        _summary(console, settings, es, scenario, slack if offline else None)
        tour.run(console, front, fleet, _day(settings, scenario), channel)
        with console.status("Letting the last Slack edits go out…"):
            _drain(redis, settings.alerts_queue)
        _where_to_look(console, settings)
        tour.where_to_look(console, front, hold)
        console.print(f"Logs of the demo's workers, bridge, API and bot: {log_dir}")
        if hold:
            console.input("\n[bold]Press Enter to stop the demo's API, bot and workers.[/bold] ")
    finally:
        if front:
            tour.close(front)
        fleet.stop_all()
        if fleet.run_log is not None:
            fleet.run_log.done()
        slack.stop()


def _day(settings: Settings, scenario: Scenario) -> date:
    """The calendar day (in the digest's zone) the replayed market ended on."""
    end = scenario.start + timedelta(seconds=scenario.duration_s)
    return end.astimezone(ZoneInfo(settings.digest_tz)).date()


def _run_channel() -> str:
    """The fake Slack's channel of this run. The fake forgets its messages between runs, and both a digest
    (edited, not posted again, for the same day and channel) and storms (alerts per channel per minute)
    would otherwise carry over from the last run."""
    return f"#demo-{datetime.now(UTC):%H%M%S}"


def _tickwatch_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(("TICKWATCH_", "SLACK_"))}


def _live(
    console: Console,
    redis: Redis,
    settings: Settings,
    base: dict[str, int],
    producer: threading.Thread,
    total: int,
    started: float,
) -> None:
    last_time, last_ticks, rate = time.monotonic(), 0, 0.0
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            lag = pending(settings, redis)  # before the counters, so "applied + lag" never undercounts
            current = state.stats(redis)
            applied = current.get("ticks", 0) - base.get("ticks", 0)
            now = time.monotonic()
            if now - last_time >= 1:
                rate, last_time, last_ticks = (applied - last_ticks) / (now - last_time), now, applied
            live.update(_stats_table(current, base, lag, rate, min(total, applied + lag)))
            if not producer.is_alive() and lag == 0:
                break
            time.sleep(0.25)
    console.print(f"\nReplayed {total:,} ticks end to end in {time.monotonic() - started:.1f}s")


def _settle(redis: Redis, queue: str, timeout: float = 30) -> None:
    """Give the alert deliveries (their own queue) a moment to drain before the summary."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and redis.llen(queue):
        time.sleep(0.2)
    time.sleep(1)


def _drain(redis: Redis, queue: str, timeout: float = 15) -> None:
    """Wait (bounded) for deliveries still queued or scheduled: throttled Slack edits wait in Celery's
    `unacked` hash, and would otherwise go out with the next run's workers, to a message that run's fake
    Slack never saw."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (redis.llen(queue) or redis.hlen("unacked")):
        time.sleep(0.2)


def _summary(
    console: Console, settings: Settings, es: Elasticsearch, scenario: Scenario, slack: FakeSlack | None
) -> None:
    indices = store.Indices(settings.index_prefix)
    es.indices.refresh(index=indices.anomalies)
    end = scenario.start + timedelta(seconds=scenario.duration_s)
    hits = es.search(
        index=indices.anomalies,
        size=100,
        sort=[{"timestamp": "asc"}],
        query={"range": {"timestamp": {"gte": scenario.start.isoformat(), "lte": end.isoformat()}}},
    )["hits"]["hits"]
    found = [hit["_source"] for hit in hits]

    table = Table("injected", "detected", "change", "deepest", "after", title="Injected vs detected")
    for event in scenario.ground_truth():
        match = next((a for a in found if a["symbol"] == event["symbol"] and a["rule"] == event["kind"]), None)
        injected = f"{event['kind']} {event['symbol']} {event['pct']}% in {event['duration_s']:.0f}s"
        if match:
            delay = datetime.fromisoformat(match["timestamp"]) - datetime.fromisoformat(event["start"])
            table.add_row(
                injected,
                "[green]yes[/green]",
                f"{match['change_pct']:+.2f}%",
                f"{match['peak_change_pct']:+.2f}%",
                f"{delay.total_seconds():.0f}s",
            )
        else:
            table.add_row(injected, "[red]no[/red]", "-", "-", "-")
    console.print(table)
    expected = {(e["symbol"], e["kind"]) for e in scenario.ground_truth()}
    extra = [a for a in found if (a["symbol"], a["rule"]) not in expected]
    console.print(f"Anomalies not injected (false positives): {len(extra)}")

    if slack:
        posts, edits = len(slack.calls("chat.postMessage")), len(slack.calls("chat.update"))
        console.print(f"Slack (fake): {posts} messages posted, {edits} edits (new peaks, recoveries)")
    kinds = Counter(event["type"] for event in _alert_events(settings) if _in_replay(event, scenario.start, end))
    console.print(
        f"Kafka '{settings.alerts_topic}': {sum(kinds.values())} events of this replay ("
        + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        + ")"
    )


def _where_to_look(console: Console, settings: Settings) -> None:
    indices = store.Indices(settings.index_prefix)
    for line in [
        "\n[bold]Where to look[/bold]:",
        f"  anomalies   curl -s '{settings.es_url}/{indices.anomalies}/_search?pretty&sort=timestamp:desc'",
        f"  ticks       curl -s '{settings.es_url}/{indices.ticks}/_count?pretty'",
        f"  alerts      Kafka topic '{settings.alerts_topic}' on {settings.kafka_bootstrap}",
        f"  dead letters  Kafka topic '{settings.dlq_topic}'",
    ]:
        console.print(line, soft_wrap=True)


def _in_replay(event: dict, start: datetime, end: datetime) -> bool:
    """Whether an `alerts` event is about an anomaly of this replay (the topic keeps every run's)."""
    stamp = (event.get("data") or {}).get("timestamp")
    return isinstance(stamp, str) and start <= datetime.fromisoformat(stamp) <= end


def _alert_events(settings: Settings) -> list[dict]:
    consumer = KafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1500,
        group_id=None,
        enable_auto_commit=False,
    )
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()
