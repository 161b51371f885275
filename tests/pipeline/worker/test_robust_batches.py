"""End to end over the real stack: a skewed tick and a bad print are flagged in Elasticsearch and counted, and
the crash among them alerts once (Kafka -> bridge -> Celery worker -> ES, alerts topic)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

from pipeline.ingest.generator import Scenario
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick, to_ms
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
        key: {k: v for k, v in doc.items() if k not in {"detected_at", "published_at"}}
        for key, doc in ns.anomalies().items()
    }


def test_one_and_four_workers_agree_with_every_rule_on(make_namespace):
    ticks = eventful_market()
    one = make_namespace()
    single = run_market(one, ticks, workers=1, concurrency=1)
    found = {(a["symbol"], a["rule"]) for a in single.values()}
    # Each move once per rule it trips; the AAPL bad print nothing (it is flagged and counted instead).
    assert found == {("TSLA", "drop"), ("TSLA", "zscore"), ("BTC-USD", "rise"), ("BTC-USD", "zscore")}
    assert int(one.redis.hget("tickwatch:stats", "suspect")) == 1

    four = make_namespace()
    assert run_market(four, ticks, workers=2, concurrency=2, TICKWATCH_BATCH_MAX_TICKS="200") == single
