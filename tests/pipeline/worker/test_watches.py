"""Personal watches on the real stack: the workers evaluate them with the channel's rules and each alert goes to its
watcher alone by DM (never the channel), edited in place when it resolves, through a channel mute; quiet hours hold
a watcher's DMs and one catch-up DM follows when they end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick
from pipeline.watches import QuietHours, Watches, new_watch
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday's XNYS session
ALICE, BOB = "U0ALICE001", "U0BOB00001"


def ticks(symbol: str, prices: list[float], start: datetime = START) -> list[Tick]:
    return [Tick(symbol=symbol, timestamp=start + timedelta(seconds=20 * i), price=p) for i, p in enumerate(prices)]


def test_watch_alerts_go_by_dm_to_their_watcher_held_in_quiet_hours_and_caught_up(namespace: Namespace):
    ns = namespace
    controls = Controls(ns.redis, ns.settings, ns.es, ns.indices)
    ops = Actor("ops", "cli")
    controls.change_group("semis", ops, add=["NVDA", "AMD"])
    controls.mute("TSLA", ops, reason="earnings")  # the channel's mute: a personal watch goes on
    watches = Watches(ns.redis, ns.settings)
    watches.add(new_watch(ALICE, "TSLA", "drop", 3.0, 600))
    watches.add(new_watch(BOB, "group:semis", "drop", 3.0, 600))
    # Bob's quiet hours: the two hours around now where he lives
    tokyo = datetime.now(ZoneInfo("Asia/Tokyo"))
    quiet = f"{tokyo - timedelta(hours=1):%H:%M}-{tokyo + timedelta(hours=1):%H:%M}"
    watches.set_quiet(BOB, QuietHours.parse(quiet))
    with FakeSlack() as slack:
        slack.users[BOB] = {"tz": "Asia/Tokyo"}
        ns.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_QUIET_CHECK_SECONDS": "1",
            }
        )
        ns.worker(concurrency=2)
        ns.bridge()
        producer = make_producer(ns.settings)
        calm, dip = [100.0] * 30, [96.0] * 3  # -4 %: past the watches' 3 %, short of the channel's 5 %
        recovered = [100.0] * 70  # clear for longer than the 10-minute window: the episode ends

        def publish(found: list[Tick]) -> None:
            for tick in found:
                producer.send(ns.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
            producer.flush()
            wait_for(ns.applied, timeout=60, what="ticks applied")

        publish(ticks("TSLA", calm + dip) + ticks("NVDA", calm + dip) + ticks("AAPL", calm + dip))

        (post,) = slack.wait_for("chat.postMessage", 1, timeout=30)
        assert post.params["channel"] == ALICE and post.params["text"].startswith("📉 TSLA \u22124.0 %")
        blocks = json.dumps(post.params["blocks"], ensure_ascii=False)
        assert "Your watch: `TSLA drop 3% in 10m`" in blocks and "channel mutes do not apply" in blocks
        actions = [e["action_id"] for b in post.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert actions == ["watch.acknowledge", "watch.unwatch"]
        # Resolved: the same DM is edited, no second message
        publish(ticks("TSLA", recovered, START + timedelta(seconds=20 * len(calm + dip))))
        update = wait_for(lambda: slack.calls("chat.update"), timeout=30, what="the DM edited")[-1]
        assert update.params["ts"] == post.response["ts"] and "Recovered" in json.dumps(update.params["blocks"])
        assert ns.anomalies() == {}  # neither stored as the channel's nor posted there (AAPL's -4 % is under 5 %)
        assert [c.params["channel"] for c in slack.calls("chat.postMessage")] == [ALICE]  # Bob's DM is held

        watches.set_quiet(BOB, None)  # quiet hours over: one catch-up DM within a check
        calls = wait_for(lambda: slack.calls("chat.postMessage")[1:], timeout=30, what="the catch-up DM")
        (catch_up,) = calls
        assert catch_up.params["channel"] == BOB and catch_up.params["text"] == "🌙 While you were away: 1 alert"
        words = json.dumps(catch_up.params["blocks"], ensure_ascii=False)
        assert "*NVDA* \u22124.0 %" in words and "`group:semis drop 3% in 10m`" in words
