"""End to end over the real stack: ticks on Kafka -> bridge -> Celery workers -> ES, alerts topic, Slack, webhooks.

A scenario with injected crashes is produced (a little out of order, plus malformed messages), and the
test checks that exactly the injected events come out, once each, on every channel; that replays and
redeliveries change nothing; and that 1 and 4 workers find the same anomalies.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from ipaddress import ip_network

from standardwebhooks.webhooks import Webhook

from pipeline import controls
from pipeline.audit import Actor
from pipeline.ingest.generator import Scenario
from pipeline.ingest.topics import make_producer
from pipeline.webhooks import subscriptions
from stack.fake_slack import FakeSlack
from stack.webhook_receiver import WebhookReceiver
from tests.conftest import Namespace, wait_for

LOOPBACK = '["127.0.0.0/8"]'  # webhook receivers here are local: allow-listed on purpose
START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
SCENARIO = Scenario.build(
    symbols=["AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOGL", "META", "BRK.B", "BTC-USD", "ETH-USD"],
    start=START,
    interval_s=1,
    duration="20m",
    seed=11,
    events=["drop:TSLA:8%:90s@6m", "rise:BTC-USD:7%:60s@9m", "drop:NVDA:6%:60s@12m"],
)
EXPECTED = {("TSLA", "drop"), ("BTC-USD", "rise"), ("NVDA", "drop")}
MALFORMED = [
    (b"TSLA", b"{not json"),
    (b"TSLA", b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:00:00Z", "price": -3}'),
    (b"XX", b'{"symbol": "bad symbol!", "timestamp": "2026-11-23T14:00:00Z", "price": 3}'),
    (b"AAPL", b'{"symbol": "AAPL", "price": 3}'),
    (b"AAPL", b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:00:00Z", "price": 3}'),
    (b"TSLA", b'{"symbol": "TSLA", "timestamp": "2099-01-01T00:00:00Z", "price": 3}'),
]


def produce(ns: Namespace, *, disorder_s: int = 10, malformed: bool = True, seed: int = 5) -> int:
    """The scenario's ticks, shuffled within `disorder_s` blocks (inside the 30 s lateness), plus junk."""
    ticks = list(SCENARIO.ticks())
    rng = random.Random(seed)
    block = disorder_s * len(SCENARIO.symbols)
    shuffled = []
    for i in range(0, len(ticks), block):
        chunk = ticks[i : i + block]
        rng.shuffle(chunk)
        shuffled += chunk
    producer = make_producer(ns.settings)
    for tick in shuffled:
        producer.send(ns.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
    if malformed:
        for key, value in MALFORMED:
            producer.send(ns.settings.ticks_topic, key=key, value=value)
    producer.flush()
    producer.close()
    return len(shuffled)


def comparable(anomalies: dict) -> dict:
    return {
        key: {k: v for k, v in doc.items() if k not in {"detected_at", "published_at", "slack"}}
        for key, doc in anomalies.items()
    }


def test_scenario_alerts_exactly_the_injected_events_on_every_channel(namespace: Namespace):
    ns = namespace
    hooks = WebhookReceiver()
    local = ns.settings.model_copy(update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]})
    _, webhook_secret = subscriptions.create(
        ns.redis, local, subscriptions.SubscriptionSpec(url=hooks.url, events=["anomaly.detected"])
    )
    controls.Controls(ns.redis, ns.settings, ns.es, ns.indices).mute("NVDA", Actor("test", "cli"))
    # NVDA's crash is stored, flagged muted, and not notified
    with FakeSlack() as slack:  # context manager starts it
        ns.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_SLACK_CHANNEL": "#surveillance",
                "TICKWATCH_WEBHOOK_ALLOW_NETWORKS": LOOPBACK,
            }
        )
        ns.worker(concurrency=2)
        bridge = ns.bridge()
        total = produce(ns)
        wait_for(ns.applied, timeout=120, what="all ticks applied")

        # Elasticsearch: every valid tick, and exactly the injected anomalies.
        wait_for(lambda: ns.ticks_indexed() == total, timeout=60, what="every valid tick indexed")
        anomalies = ns.anomalies()
        assert {(a["symbol"], a["rule"]) for a in anomalies.values()} == EXPECTED
        by_symbol = {a["symbol"]: a for a in anomalies.values()}
        assert by_symbol["NVDA"]["muted"] is True and by_symbol["TSLA"]["muted"] is False
        assert by_symbol["TSLA"]["change_pct"] <= -5 and by_symbol["TSLA"]["peak_change_pct"] < -7
        assert by_symbol["BTC-USD"]["change_pct"] >= 5

        # Kafka `alerts`: one `anomaly.detected` per notified anomaly, and `anomaly.resolved` for TSLA's episode,
        # which ends within the scenario (clear for the 5-minute cooldown); muted NVDA's end is not notified.
        def lifecycle_events() -> list | None:  # BTC-USD's episode may or may not end within the scenario
            records = ns.topic_messages(ns.settings.alerts_topic, expect=4, timeout=5)
            seen = {(json.loads(m.value)["type"], m.key) for m in records}
            return (
                records
                if {("anomaly.detected", b"TSLA"), ("anomaly.detected", b"BTC-USD"), ("anomaly.resolved", b"TSLA")}
                <= seen
                else None
            )

        alerts = wait_for(lifecycle_events, timeout=60, what="detected and resolved events on alerts")
        events = [json.loads(m.value) for m in alerts]
        detected = [e for e in events if e["type"] == "anomaly.detected"]
        ended = [e for e in events if e["type"] == "anomaly.resolved"]
        assert sorted(e["data"]["symbol"] for e in detected) == ["BTC-USD", "TSLA"]
        assert all(e["id"] == f"msg_{e['data']['id']}" for e in detected)
        assert "TSLA" in {e["data"]["symbol"] for e in ended} <= {"TSLA", "BTC-USD"}
        assert all(e["id"] == f"msg_{e['data']['id']}_resolved" and e["data"]["status"] == "resolved" for e in ended)
        assert len(events) == len(detected) + len(ended) and {m.key for m in alerts} == {b"BTC-USD", b"TSLA"}
        assert by_symbol["TSLA"]["status"] == "resolved" and by_symbol["TSLA"]["resolved_at"]

        # Slack: a Block Kit message per notified anomaly, to the configured channel.
        posts = slack.wait_for("chat.postMessage", 2, timeout=30)
        assert {p.params["channel"] for p in posts} == {"#surveillance"}
        assert sorted(p.params["text"].split()[1] for p in posts) == ["BTC-USD", "TSLA"]
        tsla = by_symbol["TSLA"]
        wait_for(lambda: ns.anomalies()[tsla["id"]].get("slack"), timeout=30, what="TSLA's Slack ref stored")
        assert ns.anomalies()[tsla["id"]]["slack"]["ts"] in {p.response["ts"] for p in posts}
        assert all(p.params["blocks"][0]["type"] == "header" for p in posts)

        # Webhooks: signed per Standard Webhooks, verifiable with the subscriber's secret.
        wait_for(lambda: len(hooks.received) >= 2, timeout=30, what="webhook deliveries")
        verifier = Webhook(webhook_secret)
        bodies = [verifier.verify(body, headers) for headers, body in hooks.received]
        assert sorted(b["data"]["symbol"] for b in bodies if b["type"] == "anomaly.detected") == ["BTC-USD", "TSLA"]

        # Dead letters: every malformed message, with its original bytes and the reason.
        dead = ns.topic_messages(ns.settings.dlq_topic, expect=len(MALFORMED))
        assert sorted(m.value for m in dead) == sorted(v for _, v in MALFORMED)
        reasons = {m.value: dict(m.headers)["error"].decode() for m in dead}
        assert "price" in reasons[MALFORMED[1][1]] and "greater than 0" in reasons[MALFORMED[1][1]]
        assert "symbol" in reasons[MALFORMED[2][1]]
        assert "timestamp" in reasons[MALFORMED[3][1]]
        assert "key must be the symbol" in reasons[MALFORMED[4][1]]
        assert "in the future" in reasons[MALFORMED[5][1]]

        # Replays: the same ticks again (new offsets) and a redelivery from offset 0 (new consumer group).
        before = comparable(anomalies)
        produce(ns, malformed=False, seed=6)
        wait_for(ns.applied, timeout=120, what="replayed ticks applied")
        ns.stop(bridge)
        assert bridge.returncode == 0, "SIGTERM should stop the bridge cleanly"
        redelivery = ns.bridge(TICKWATCH_CONSUMER_GROUP=f"{ns.settings.consumer_group}-again")
        wait_for(
            lambda: int(ns.redis.hget("tickwatch:stats", "consumed") or 0) >= 3 * total,
            timeout=120,
            what="redelivered records consumed",
        )
        wait_for(ns.applied, timeout=60, what="redelivery applied")
        ns.stop(redelivery)
        assert comparable(ns.anomalies()) == before
        assert len(ns.topic_messages(ns.settings.alerts_topic, expect=len(events) + 1, timeout=5)) == len(events)
        assert len(slack.calls("chat.postMessage")) == 2


def test_one_and_four_workers_find_the_same_anomalies(make_namespace):
    one = make_namespace()
    one.worker(concurrency=1)
    one.bridge()
    produce(one)
    wait_for(one.applied, timeout=120, what="single-worker run")
    single = comparable(one.anomalies())
    assert {(a["symbol"], a["rule"]) for a in single.values()} == EXPECTED

    four = make_namespace()
    for _ in range(2):
        four.worker(concurrency=2)  # two worker processes of two children: four concurrent appliers
    four.bridge(TICKWATCH_BATCH_MAX_TICKS="200")  # smaller batches: more of them racing each other
    produce(four)
    wait_for(four.applied, timeout=180, what="four-worker run")
    assert comparable(four.anomalies()) == single
