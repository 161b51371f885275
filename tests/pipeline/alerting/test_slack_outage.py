"""Slack down for a while, and the alerts worker killed -9 in the middle: each episode still gets exactly one
message, seconds after Slack recovers (real bridge, workers, Kafka, Redis and Elasticsearch; Slack is the local
fake, misbehaving on a schedule)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime

from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from stack.fake_slack import FakeSlack, Outage
from tests.conftest import Namespace, wait_for

WINDOW = 5.0  # seconds of each kind of failure
SCENARIO = Scenario.build(
    symbols=["TSLA", "NVDA", "BTC-USD", "AAPL", "MSFT"],
    start=datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
    interval_s=1,
    duration="15m",
    seed=3,
    events=["drop:TSLA:8%:60s@5m", "drop:NVDA:7%:60s@7m", "rise:BTC-USD:7%:60s@9m"],
)


def posted_episodes(slack: FakeSlack) -> Counter[str]:
    """Successful chat.postMessage calls per anomaly."""
    return Counter(
        call.params["metadata"]["event_payload"]["anomaly_id"]
        for call in slack.calls("chat.postMessage")
        if call.ok and "metadata" in call.params
    )


def timeline(slack: FakeSlack) -> list[tuple[str, int, str]]:
    """When each message call was answered, and how: what a failure shows."""
    return [
        (datetime.fromtimestamp(call.at, UTC).strftime("%H:%M:%S.%f")[:-3], call.status, call.response.get("error", ""))
        for call in slack.calls("chat.postMessage")
    ]


def test_each_episode_gets_one_message_after_429_500_and_timeouts_and_a_killed_worker(namespace: Namespace):
    ns = namespace
    with FakeSlack() as slack:
        ns.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_SLACK_TIMEOUT_SECONDS": "1",
                "TICKWATCH_SLACK_CIRCUIT_COOLOFF_SECONDS": "1",
                "TICKWATCH_STORM_THRESHOLD": "50",
            }
        )
        now = time.monotonic()
        slack.outage(Outage(until=now + WINDOW, status=429, error="ratelimited", retry_after=1))
        slack.outage(Outage(until=now + 2 * WINDOW, status=500, error="internal_error"))
        slack.outage(Outage(until=now + 3 * WINDOW, delay=2.0))  # answers after the 1 s timeout has fired
        ns.worker(2, "--queues", ns.settings.celery_queue)
        deliveries = ns.worker(4, "--queues", ns.settings.alerts_queue, "--pool", "threads")
        ns.bridge()
        publish(SCENARIO.ticks(), ns.settings, progress=False)

        wait_for(lambda: slack.calls("chat.postMessage"), timeout=60, what="a first (failing) call to Slack")
        ns.stop(deliveries, signal.SIGKILL)  # whatever it was doing or waiting for must not be lost
        ns.worker(4, "--queues", ns.settings.alerts_queue, "--pool", "threads")
        wait_for(lambda: time.monotonic() > now + 3 * WINDOW, timeout=60, what="the end of the outage")
        recovered = time.monotonic()
        wait_for(lambda: len(posted_episodes(slack)) == 3, timeout=45, what="one message per episode")
        # Seconds, not the broker's 5-minute visibility timeout: usually under 5 s here, but a cold 2-core CI
        # machine once took 17 s (a stall after the circuit opened that was not reproduced), hence 30.
        assert time.monotonic() - recovered < 30, f"the messages came long after Slack recovered: {timeline(slack)}"
        time.sleep(3)  # nothing more may come: no second message for any episode
        assert set(posted_episodes(slack).values()) == {1}
        failed = [call for call in slack.calls("chat.postMessage") if not call.ok]
        assert failed, "Slack's outage was never met: the test proves nothing"
        assert len(failed) < 30, f"{len(failed)} calls during the outage: the circuit did not hold them back"
