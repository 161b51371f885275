"""A replay goes on from the stored market: a second synthetic run raises only what it injects, and the demo's
start past others' unread ticks applies none of them (real Kafka, Redis, workers and the `tickwatch` CLI)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from pipeline.detect import state
from pipeline.ingest.continuity import skip_backlog
from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from tests.conftest import Namespace, wait_for


def generate(ns: Namespace, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tickwatch", "generate", "--speed", "max", *args],
        env=ns.env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def detected(ns: Namespace) -> list[tuple[str, str]]:
    events = [orjson.loads(m.value) for m in ns.topic_messages(ns.settings.alerts_topic, expect=0, timeout=3)]
    return [(e["data"]["symbol"], e["data"]["rule"]) for e in events if e["type"] == "anomaly.detected"]


def test_a_second_synthetic_run_alerts_only_what_it_injects(namespace: Namespace):
    ns = namespace
    ns.split_workers()
    ns.bridge()
    generate(ns, "-n", "8", "--duration", "10m", "--seed", "1", "--inject", "rise:NVDA:9%:60s@2m")  # NVDA ends high
    wait_for(ns.applied, timeout=60, what="the first run applied")
    generate(ns, "-n", "8", "--duration", "10m", "--seed", "2", "--inject", "drop:TSLA:8%:90s@2m")
    wait_for(ns.applied, timeout=60, what="the second run applied")
    wait_for(lambda: len(detected(ns)) >= 2, timeout=30, what="the injected rise and drop")
    # NVDA restarting at its usual price would have "dropped" 9 %: the second run goes on from where it stood.
    assert sorted(detected(ns)) == [("NVDA", "rise"), ("TSLA", "drop")]


def test_skipping_the_backlog_applies_none_of_it(namespace: Namespace):
    ns = namespace
    market = Scenario.build(symbols=["AAPL", "MSFT"], interval_s=1, duration="2m", seed=4)
    publish(market.ticks(), ns.settings, progress=False)
    assert skip_backlog(ns.settings, ns.redis) == market.tick_count
    assert skip_backlog(ns.settings, ns.redis) == 0  # nothing left to skip
    ns.split_workers()
    ns.bridge()
    publish(Scenario.build(symbols=["AAPL"], interval_s=1, duration="1m", seed=5).ticks(), ns.settings, progress=False)
    wait_for(ns.applied, timeout=60, what="the new ticks applied")
    assert state.stats(ns.redis)["ticks"] == 60  # only the new ones
