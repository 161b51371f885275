"""Sessions on the real stack: a stock opening 6 % below Friday's last price alerts once as a gap on Monday's
first tick (Slack and Elasticsearch), and the drop rule stays quiet across the weekend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

FRIDAY_LAST = datetime(2026, 11, 20, 20, 59, tzinfo=UTC)  # 15:59 New York
MONDAY_OPEN = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def test_a_gap_alert_at_the_session_open(namespace: Namespace):
    ns = namespace
    Controls(ns.redis, ns.settings, ns.es, ns.indices).set_rule("TSLA", "gap", Actor("ops", "cli"), threshold_pct=4)
    friday = [Tick(symbol="TSLA", timestamp=FRIDAY_LAST - timedelta(seconds=s), price=250.0) for s in range(60, 0, -1)]
    monday = [Tick(symbol="TSLA", timestamp=MONDAY_OPEN + timedelta(seconds=s), price=235.0) for s in range(120)]
    with FakeSlack() as slack:
        ns.env.update({"SLACK_BOT_TOKEN": "xoxb-test", "TICKWATCH_SLACK_API_URL": slack.url})
        ns.worker(concurrency=1)
        ns.bridge()
        producer = make_producer(ns.settings)
        for tick in friday + monday:
            producer.send(ns.settings.ticks_topic, key=b"TSLA", value=tick.to_json())
        producer.flush()
        wait_for(ns.applied, timeout=60, what="ticks applied")
        (anomaly,) = ns.anomalies().values()
        assert (anomaly["rule"], anomaly["change_pct"], anomaly["reference_price"]) == ("gap", -6.0, 250.0)
        (post,) = slack.wait_for("chat.postMessage", 1, timeout=30)
        assert post.params["text"].startswith("📉 TSLA opened \u22126.0 % (gap): 235.00 vs 250.00")  # a minus sign
        assert "from the last price before the open" in json.dumps(post.params["blocks"], ensure_ascii=False)
