"""Daemons ride out their engines: the bridge and a worker started while Kafka and Redis are down carry on
once they come up, and a Kafka killed -9 mid-stream loses nothing and alerts nothing twice.

This test runs its own Kafka broker and Redis server (same distributions as the local stack, other ports and
data directories), so it can kill them without disturbing the shared stack. Elasticsearch is the shared one.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline import store
from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from pipeline.ingest.topics import ensure_topics
from tests.conftest import Namespace, wait_for
from tickwatch.fleet import discard, env_for

DOWN_AT_START_SECONDS = 35  # longer than the 31 s the bridge used to give up after
START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def scenario(start_minute: int, symbol: str) -> Scenario:
    return Scenario.build(
        symbols=[symbol, "AAPL", "MSFT"],
        start=START.replace(minute=start_minute),
        interval_s=1,
        duration="12m",
        seed=start_minute,
        events=[f"drop:{symbol}:8%:60s@5m"],
    )


def alerts_by_id(ns: Namespace) -> dict[str, int]:
    seen: dict[str, int] = {}
    for message in ns.topic_messages(ns.settings.alerts_topic, expect=0, timeout=3):
        event = orjson.loads(message.value)
        if event["type"] == "anomaly.detected":
            seen[event["data"]["symbol"]] = seen.get(event["data"]["symbol"], 0) + 1
    return seen


def test_daemons_wait_out_engines_down_at_start_and_kafka_killed_mid_stream(engines, tmp_path: Path):
    settings, kafka, redis = engines
    env = env_for(
        {
            "TICKWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "TICKWATCH_REDIS_URL": settings.redis_url,
            "TICKWATCH_ES_URL": settings.es_url,
            "TICKWATCH_INDEX_PREFIX": settings.index_prefix,
            "TICKWATCH_METRICS_PORT": "0",
        }
    )
    ns = Namespace(env, tmp_path / "logs", settings=settings)
    try:
        ns.split_workers()
        bridge = ns.bridge()
        time.sleep(DOWN_AT_START_SECONDS)  # the point of the test: nothing may answer for this long
        assert all(proc.poll() is None for proc in ns.procs), "a daemon gave up while its engines were down"

        redis.up()
        kafka.up()
        ensure_topics(settings)
        store.ensure_templates(store.connect(settings), store.Indices(settings.index_prefix))
        publish(scenario(0, "TSLA").ticks(), settings, progress=False)
        wait_for(lambda: ns.applied(), timeout=120, what="the first scenario applied after the engines came up")

        pid = kafka.proc.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # mid-stream: the bridge and the alerts worker are connected
        time.sleep(3)
        kafka.up()  # same data directory: the topics and committed offsets survive
        publish(scenario(20, "NVDA").ticks(), settings, progress=False)
        wait_for(lambda: ns.applied(), timeout=120, what="the second scenario applied after Kafka came back")
        wait_for(lambda: alerts_by_id(ns) == {"TSLA": 1, "NVDA": 1}, timeout=60, what="each crash alerted once")
        assert bridge.poll() is None and all(proc.poll() is None for proc in ns.procs)
        outages = (ns.log_dir / "bridge-2.log").read_text().count("is not reachable")
        assert 1 <= outages <= 3, f"the bridge logged {outages} outage lines, not one per outage"
    finally:
        ns.stop_all(signal.SIGKILL)
        if kafka.proc.pid() is not None:
            discard(settings)
