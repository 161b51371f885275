"""End to end over the real stack: a skewed tick and a bad print are flagged in Elasticsearch and counted, and
the crash among them alerts once (Kafka -> bridge -> Celery worker -> ES, alerts topic)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

from pipeline import keys
from pipeline.alerting import dms
from pipeline.ingest.generator import Scenario
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick, to_ms
from pipeline.watches import Watches, new_watch
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for


def feed(start: datetime) -> tuple[list[Tick], Tick, Tick]:
    """15 minutes of TSLA, one tick a second up to now: a half-price print at 300 s, a tick dated 20 minutes
    ahead at 400 s, and a 9 % crash over 30 s from 600 s that persists."""
    rng, log_price, ticks = random.Random(2), math.log(250), []
    for k in range(900):
        log_price += 0.0002 * rng.gauss(0, 1)
        crash = 1 - 0.09 * min(max(k - 600, 0), 30) / 30
        ticks.append(
            Tick(
                symbol="TSLA",
                timestamp=start + timedelta(seconds=k),
                price=round(math.exp(log_price) * crash, 2),
                volume=300,
            )
        )
    bad_print = ticks[300].model_copy(update={"price": round(ticks[300].price / 2, 2)})
    ticks[300] = bad_print
    skewed = ticks[400].model_copy(update={"timestamp": datetime.now(UTC) + timedelta(minutes=20)})
    return [*ticks[:401], skewed, *ticks[401:]], bad_print, skewed


def test_suspect_ticks_are_flagged_and_counted_and_the_crash_alerts_once(namespace: Namespace):
    ns = namespace
    ns.worker(concurrency=1)
    ns.bridge()
    ticks, bad_print, skewed = feed(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=900))
    producer = make_producer(ns.settings)
    for tick in ticks:
        producer.send(ns.settings.ticks_topic, key=b"TSLA", value=tick.to_json())
    producer.flush()
    producer.close()
    wait_for(ns.applied, timeout=120, what="all ticks applied")
    wait_for(lambda: ns.ticks_indexed() == len(ticks), timeout=60, what="every tick indexed")

    anomalies = list(ns.anomalies().values())
    assert [(a["symbol"], a["rule"]) for a in anomalies] == [("TSLA", "drop")]
    assert anomalies[0]["change_pct"] <= -5 and anomalies[0]["started_at"] < anomalies[0]["timestamp"]

    def flagged() -> dict[int, str]:
        ns.es.indices.refresh(index=ns.indices.ticks)
        hits = ns.es.search(index=ns.indices.ticks, query={"term": {"suspect": True}}, size=10)["hits"]["hits"]
        return {hit["_source"]["timestamp"]: hit["_source"]["suspect_reason"] for hit in hits}

    found = wait_for(lambda: len(flagged()) == 2 and flagged(), timeout=30, what="suspect ticks flagged")
    assert "isolated print: drop -50" in found[to_ms(bad_print.timestamp)]
    assert "ahead of the clock" in found[to_ms(skewed.timestamp)]
    assert int(ns.redis.hget("tickwatch:stats", "suspect")) == 2
    assert int(ns.redis.hget("tickwatch:stats", "late") or 0) == 0  # the skewed tick blinded nothing

    alerts = [json.loads(m.value) for m in ns.topic_messages(ns.settings.alerts_topic, expect=1)]
    assert [(e["type"], e["data"]["rule"]) for e in alerts] == [("anomaly.detected", "drop")]


START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
EVERY_RULE_ON = {"TICKWATCH_ZSCORE_K": "6", "TICKWATCH_VOLUME_SPIKE_X": "3"}


def eventful_market() -> list[Tick]:
    """40 minutes of four symbols (the zscore and volume rules warm up in the first 10.5), a TSLA crash, a
    BTC-USD rise, a half-price AAPL print, a little out of order (10 s blocks shuffled)."""
    scenario = Scenario.build(
        symbols=["AAPL", "TSLA", "BTC-USD", "NVDA"],
        start=START,
        interval_s=1,
        duration="40m",
        seed=12,
        events=["drop:TSLA:8%:90s@25m", "rise:BTC-USD:7%:60s@30m"],
    )
    ticks = list(scenario.ticks())
    glitch = next(i for i, t in enumerate(ticks) if t.symbol == "AAPL" and t.timestamp == START + timedelta(minutes=20))
    ticks[glitch] = ticks[glitch].model_copy(update={"price": round(ticks[glitch].price / 2, 2)})
    rng, shuffled = random.Random(3), []
    for i in range(0, len(ticks), 40):
        block = ticks[i : i + 40]
        rng.shuffle(block)
        shuffled += block
    return shuffled


def run_market(ns: Namespace, ticks: list[Tick], *, workers: int, concurrency: int, **bridge_env: str) -> dict:
    ns.env.update(EVERY_RULE_ON)
    for _ in range(workers):
        ns.worker(concurrency=concurrency)
    ns.bridge(**bridge_env)
    producer = make_producer(ns.settings)
    for tick in ticks:
        producer.send(ns.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
    producer.flush()
    producer.close()
    wait_for(ns.applied, timeout=180, what=f"{workers} x {concurrency} run")
    return {
        key: {k: v for k, v in doc.items() if k not in {"detected_at", "published_at", "slack"}}
        for key, doc in ns.anomalies().items()
    }


WATCHES = [("U0ALICE001", "TSLA", "drop", 4.0), ("U0BOB00001", "BTC-USD", "rise", 5.0)]
OPENED = {"id", "symbol", "rule", "watcher", "timestamp", "price", "reference_price", "change_pct", "muted"}


def watch_alerts(ns: Namespace, expect: int) -> dict:
    """The personal watches' alerts as their DMs hold them (delivered after the batches: awaited), as they opened
    (later edits may still be on their way)."""

    def found() -> dict | None:
        records = [dms.load(ns.redis, keys.text(k).rsplit(":", 1)[-1]) for k in ns.redis.scan_iter(keys.dm_record("*"))]
        done = {r.anomaly.id: r.anomaly.model_dump(include=OPENED) for r in records if r}
        return done if len(done) >= expect else None

    return wait_for(found, timeout=60, what=f"{expect} watch alerts by DM")


def test_one_and_four_workers_agree_with_every_rule_on(make_namespace):
    ticks = eventful_market()
    results = []
    with FakeSlack() as slack:
        for workers, concurrency, env in ((1, 1, {}), (2, 2, {"TICKWATCH_BATCH_MAX_TICKS": "200"})):
            ns = make_namespace()
            ns.env.update({"SLACK_BOT_TOKEN": "xoxb-test", "TICKWATCH_SLACK_API_URL": slack.url})
            for user, target, rule, threshold in WATCHES:  # personal watches, in the same detection pass
                Watches(ns.redis, ns.settings).add(new_watch(user, target, rule, threshold, 300))
            found = run_market(ns, ticks, workers=workers, concurrency=concurrency, **env)
            results.append((found, watch_alerts(ns, len(WATCHES)), int(ns.redis.hget("tickwatch:stats", "suspect"))))
    single, watched, suspect = results[0]
    # Each move once per rule it trips; the AAPL bad print nothing (it is flagged and counted instead).
    assert {(a["symbol"], a["rule"]) for a in single.values()} == {
        ("TSLA", "drop"),
        ("TSLA", "zscore"),
        ("BTC-USD", "rise"),
        ("BTC-USD", "zscore"),
    }
    assert suspect == 1
    assert {(a["symbol"], a["watcher"]) for a in watched.values()} == {
        ("TSLA", "U0ALICE001"),
        ("BTC-USD", "U0BOB00001"),
    }
    assert results[1] == results[0]  # the same anomalies, watch alerts and bad prints
