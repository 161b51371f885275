"""`tickwatch ingest` as a user runs it: a local venue, the real Kafka, SIGTERM; bad arguments get one line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pipeline.ingest.topics import ensure_topics
from pipeline.schema import parse_tick
from stack.fake_venues import FakeVenue, Pause, alpaca_trade, coinbase_match
from tests.conftest import Namespace, wait_for
from tickwatch.fleet import env_for, free_port

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
MATCHES = [coinbase_match("ETH-USD", n, 3_000 + n, 0.5, AT + timedelta(seconds=n)) for n in range(1, 6)]


def start(ns: Namespace, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tickwatch", "ingest", *args],
        env=ns.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _metrics(port: int, line: str) -> str | None:
    with contextlib.suppress(httpx.HTTPError):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        return text if line in text else None
    return None


def test_live_trades_reach_kafka_and_sigterm_sends_what_is_buffered(namespace: Namespace):
    ns = namespace
    port = free_port()
    ns.env["TICKWATCH_METRICS_PORT"] = str(port)
    with FakeVenue("coinbase", [MATCHES]) as venue:
        ingest = start(ns, "coinbase", "eth/usd", "--url", venue.url)
        wait_for(lambda: len(venue.subscriptions) == 1, timeout=30, what="the subscription")
        metrics = wait_for(
            lambda: _metrics(port, 'tickwatch_ingest_ticks_total{source="coinbase",symbol="ETH-USD"} 5.0'),
            timeout=15,
            what="the five ticks in the metrics",
        )
        assert 'tickwatch_ingest_reconnects_total{source="coinbase"} 0.0' in metrics
        ingest.send_signal(signal.SIGTERM)
        _, err = ingest.communicate(timeout=30)
    assert ingest.returncode == 0, err
    assert "5 ticks published" in err
    ticks = [json.loads(m.value) for m in ns.topic_messages(ns.settings.ticks_topic, expect=5)]
    assert [(t["symbol"], t["price"], t["source"]) for t in ticks] == [
        ("ETH-USD", 3_000 + n, "coinbase") for n in range(1, 6)
    ]
    assert ticks[0]["timestamp"].startswith("2026-12-05T08:00:01")


def test_dry_run_prints_the_ticks_instead(namespace: Namespace):
    with FakeVenue("coinbase", [MATCHES]) as venue:
        ingest = start(namespace, "coinbase", "ETH-USD", "--url", venue.url, "--dry-run")
        wait_for(lambda: len(venue.subscriptions) == 1, timeout=30, what="the subscription")
        time.sleep(1)
        ingest.send_signal(signal.SIGINT)
        out, _ = ingest.communicate(timeout=30)
    assert [json.loads(line)["price"] for line in out.splitlines()] == [3_001, 3_002, 3_003, 3_004, 3_005]


def test_an_unknown_source_or_a_pair_that_is_not_one_is_refused_in_one_line(namespace: Namespace):
    for args, expected in [(["kraken", "BTC-USD"], "unknown source 'kraken'"), (["coinbase", "BTCUSD"], "not a pair")]:
        done = start(namespace, *args)
        _, err = done.communicate(timeout=60)
        assert done.returncode == 2 and expected in err and "Traceback" not in err


def test_a_crash_on_the_venue_alerts_through_the_whole_pipeline(namespace: Namespace):
    ns = namespace
    calm = [coinbase_match("ETH-USD", n, 3_000.0, 0.5, AT + timedelta(seconds=n)) for n in range(1, 61)]
    crash = [coinbase_match("ETH-USD", n, 2_760.0, 0.5, AT + timedelta(seconds=n)) for n in range(61, 66)]
    ns.split_workers()
    ns.bridge()
    with FakeVenue("coinbase", [calm + crash]) as venue:
        ingest = start(ns, "coinbase", "ETH-USD", "--url", venue.url)
        try:
            found = wait_for(lambda: ns.anomalies(), timeout=60, what="the anomaly of the crash")
        finally:
            ingest.send_signal(signal.SIGTERM)
            ingest.communicate(timeout=30)
    [anomaly] = found.values()
    assert anomaly["symbol"] == "ETH-USD" and anomaly["rule"] == "drop" and anomaly["change_pct"] <= -5
    assert anomaly["timestamp"].startswith("2026-12-05T08:01:0")  # the exchange's time of the crossing trade


def test_the_documented_example_producer_publishes_ticks_the_bridge_accepts(namespace: Namespace):
    ns = namespace
    example = Path(__file__).resolve().parents[3] / "docs" / "examples" / "produce_ticks.py"
    done = subprocess.run(
        [sys.executable, str(example), "--bootstrap", ns.settings.kafka_bootstrap, "--topic", ns.settings.ticks_topic],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "sent 3 ticks" in done.stdout, done.stderr
    records = ns.topic_messages(ns.settings.ticks_topic, expect=3)
    assert [parse_tick(r.value).symbol for r in records] == ["ACME"] * 3  # valid ticks, none dead-lettered
    assert {r.key for r in records} == {b"ACME"}


def test_alpaca_needs_its_keys_and_then_streams_us_stocks(namespace: Namespace):
    done = start(namespace, "alpaca", "AAPL")
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2 and "set ALPACA_API_KEY and ALPACA_API_SECRET first" in err
    namespace.env.update({"ALPACA_API_KEY": "key-id", "ALPACA_API_SECRET": "its-secret"})
    trades = [alpaca_trade("AAPL", 10 + i, 226.5 + i, 100, AT + timedelta(seconds=i)) for i in range(3)]
    with FakeVenue("alpaca", [trades]) as venue:
        ingest = start(namespace, "alpaca", "aapl", "--url", venue.url, "--dry-run")
        wait_for(lambda: venue.subscriptions, timeout=30, what="the subscription")
        time.sleep(1)
        ingest.send_signal(signal.SIGTERM)
        out, _ = ingest.communicate(timeout=30)
    assert [json.loads(line)["price"] for line in out.splitlines()] == [226.5, 227.5, 228.5]


def test_kafka_stopped_for_ten_seconds_loses_no_trade(engines, tmp_path: Path):
    """A private Kafka, killed -9 while trades keep coming and started again 10 s later."""
    settings, kafka, _ = engines
    kafka.up()
    ensure_topics(settings)
    env = env_for({"TICKWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "TICKWATCH_METRICS_PORT": "0"})
    ns = Namespace(env, tmp_path / "logs", settings=settings)
    trades = [coinbase_match("ETH-USD", n, 3_000 + n, 0.5, AT + timedelta(seconds=n)) for n in range(1, 16)]
    session = [*trades[:5], Pause(4), *trades[5:10], Pause(10), *trades[10:]]  # 6-10 come while Kafka is down
    with FakeVenue("coinbase", [session]) as venue:
        ingest = start(ns, "coinbase", "ETH-USD", "--url", venue.url)
        try:
            wait_for(
                lambda: len(ns.topic_messages(settings.ticks_topic, expect=5, timeout=2)) >= 5,
                timeout=60,
                what="the first five ticks",
            )
            pid = kafka.proc.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            time.sleep(10)
            kafka.up()  # same data directory: the topic survives
            wait_for(
                lambda: (
                    len({json.loads(m.value)["price"] for m in ns.topic_messages(settings.ticks_topic, 15, 3)}) == 15
                ),
                timeout=90,
                what="all fifteen trades on Kafka",
            )
            assert ingest.poll() is None, "ingest gave up while Kafka was away for 10 s"
        finally:
            ingest.send_signal(signal.SIGTERM)
            _, err = ingest.communicate(timeout=60)
    assert ingest.returncode == 0, err
    assert sorted(prices_on(ns)) == [3_000 + n for n in range(1, 16)]


def prices_on(ns: Namespace) -> set[float]:
    return {json.loads(m.value)["price"] for m in ns.topic_messages(ns.settings.ticks_topic, expect=15, timeout=3)}
