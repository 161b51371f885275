"""The demo's tour end to end, on a private slice of the real stack: `tickwatch api` and `tickwatch bot` as
subprocesses, a crash replayed through the bridge and workers, then every step of the tour, asserting what
the terminal shows and the state the clicks left behind."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from rich.console import Console

from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for
from tickwatch.demo import tour

CHANNEL = "#tour-test"


def test_the_tour_shows_every_front_end_at_work(namespace: Namespace) -> None:
    ns = namespace
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    # TSLA's crash comes 2 minutes before the end: its episode is still open (the cooldown is 5 minutes).
    scenario = Scenario.build(
        symbols=["TSLA", "AAPL"],
        start=end - timedelta(minutes=12),
        interval_s=1,
        duration="12m",
        seed=3,
        events=["drop:TSLA:8%:60s@10m"],
    )
    with FakeSlack() as slack:
        ns.env.update(
            {
                **tour.fleet_env(),
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_SLACK_CHANNEL": CHANNEL,
            }
        )
        ns.split_workers(1)
        ns.bridge(TICKWATCH_METRICS_PORT="0")
        console = Console(record=True, width=120, force_terminal=False)
        front = tour.start(ns, slack, True, console)
        try:
            publish(scenario.ticks(), ns.settings, progress=False)
            wait_for(ns.applied, timeout=120, what="all ticks applied")
            wait_for(lambda: slack.calls("chat.postMessage"), timeout=30, what="the alert posted")
            wait_for(lambda: front.receiver.receipts, timeout=30, what="a webhook delivery")
            tour.run(console, front, ns, end.date(), CHANNEL)
        finally:
            tour.close(front)
    shown = console.export_text()

    assert "a · An alert in Slack" in shown and "📉 TSLA" in shown
    assert "Acknowledge" in shown and "Mute… ▾" in shown and "for 1 hour" in shown
    assert "→ HTTP 200" in shown and "Acknowledged by @newcomer" in shown
    (anomaly,) = ns.anomalies().values()
    assert (anomaly["status"], anomaly["acknowledged_by"]) == ("acknowledged", tour.USER_ID)
    assert "TSLA" in shown.split("c · A slash command")[1].split("d · ")[0]
    assert re.search(r"✔ (\d+) of \1 signatures verified with standardwebhooks", shown)
    assert "✔ signature verified" in shown
    assert f"posted the {end.date()} digest in {CHANNEL}" in shown
    assert "the receiver got digest.daily too (signature verified)" in shown
    assert "skipped" not in shown and "[red]" not in shown
    left = httpx.get(f"{front.api.url}/v1/webhooks", headers=front.auth).json()["items"]
    assert left == []  # the tour deletes its subscription
