"""The alert lifecycle end to end over the real stack and a fake Slack: a storm of simultaneous crashes gives
N messages and then one grouped message; each episode's end edits its message and goes out as
`anomaly.resolved` on the `alerts` topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

SYMBOLS = [f"CR{i:02d}" for i in range(12)]
# A one-minute window and cooldown keep the whole lifecycle within 5 minutes of event time.
CRASH = Scenario.build(
    symbols=SYMBOLS,
    start=datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
    interval_s=1,
    duration="5m",
    seed=3,
    events=[f"drop:{s}:9%:20s@90s" for s in SYMBOLS],
)


def test_a_storm_is_grouped_and_every_episode_end_edits_its_message(namespace: Namespace):
    ns = namespace
    with FakeSlack() as slack:
        ns.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_SLACK_CHANNEL": "#surveillance",
                "TICKWATCH_WINDOW_SECONDS": "60",
                "TICKWATCH_STORM_THRESHOLD": "5",
                "TICKWATCH_STORM_EDIT_INTERVAL_SECONDS": "1",
                "TICKWATCH_SLACK_EDIT_INTERVAL_SECONDS": "1",
            }
        )
        ns.split_workers()  # deliveries on a threaded worker: several at once, as in production
        ns.bridge()
        publish(CRASH.ticks(), ns.settings, progress=False)
        wait_for(ns.applied, timeout=90, what="all ticks applied")

        events = [json.loads(m.value) for m in ns.topic_messages(ns.settings.alerts_topic, expect=24)]
        assert sorted(e["data"]["symbol"] for e in events if e["type"] == "anomaly.detected") == SYMBOLS
        assert sorted(e["data"]["symbol"] for e in events if e["type"] == "anomaly.resolved") == SYMBOLS

        # Every episode ended: each lone message was edited to say it recovered, the grouped one lists them all.
        def recovered() -> bool:
            posts = slack.calls("chat.postMessage")
            grouped = [p.response["ts"] for p in posts if "Market storm" in p.params["text"]]
            latest = {
                call.params["ts"]: json.dumps(call.params["blocks"], ensure_ascii=False)
                for call in slack.calls("chat.update")
                if call.ok
            }
            lone = {p.response["ts"] for p in posts} - set(grouped)
            return (
                len(lone) == 5
                and len(grouped) == 1
                and all("Recovered after" in latest.get(ts, "") for ts in lone)
                and latest.get(grouped[0], "").count("🟢 recovered") == 7
            )

        wait_for(recovered, timeout=30, what="5 lone messages and 1 grouped one, all edited to recovered")
        # Slack: five alerts alone, then one grouped message for the rest, never a message each.
        posts = slack.calls("chat.postMessage")
        grouped = [p for p in posts if "Market storm" in p.params["text"]]
        assert len(grouped) == 1 and len(posts) == 6, [p.params["text"] for p in posts]
        alone = {p.response["ts"] for p in posts if p not in grouped}
        docs = ns.anomalies()
        assert {d["status"] for d in docs.values()} == {"resolved"} and len(docs) == 12
        assert {d["slack"]["ts"] for d in docs.values()} == alone | {grouped[0].response["ts"]}
        assert len(slack.calls("chat.postMessage")) == 6
