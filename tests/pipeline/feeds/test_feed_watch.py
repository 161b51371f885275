"""Feed health over the real stack: live ticks through Kafka, the bridge and the workers; the check on the alerts
workers' clock; Slack (the local fake), a webhook subscriber and the `alerts` topic."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from pipeline.ingest.publish import publish
from pipeline.schema import Tick
from pipeline.webhooks import subscriptions
from stack.fake_slack import FakeSlack
from stack.webhook_receiver import WebhookReceiver
from tests.conftest import Namespace, wait_for
from tests.pipeline.webhooks.test_subscriptions import configure

FEED_EVENTS = ["feed.stale", "feed.recovered"]


def live(symbols: list[str], seconds: float, every: float = 0.2) -> Iterator[Tick]:
    """Ticks made now, as a live feed makes them."""
    end = time.monotonic() + seconds
    price = 100.0
    while time.monotonic() < end:
        for symbol in symbols:
            yield Tick(symbol=symbol, timestamp=datetime.now(UTC), price=price, volume=1.0)
        price += 0.01
        time.sleep(every)


@contextlib.contextmanager
def ticking(ns: Namespace, symbols: list[str], seconds: float) -> Iterator[None]:
    """A live feed of `symbols` in the background for `seconds`."""
    feeder = threading.Thread(target=publish, args=(live(symbols, seconds), ns.settings), kwargs={"progress": False})
    feeder.start()
    try:
        yield
    finally:
        feeder.join()


def feed_env(ns: Namespace, slack: FakeSlack) -> None:
    configure(ns)  # loopback webhook receivers allowed
    ns.env.update(
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "TICKWATCH_SLACK_API_URL": slack.url,
            "TICKWATCH_FEED_CHECK_SECONDS": "0.5",
            "TICKWATCH_STALE_MIN_SECONDS": "2",
            "TICKWATCH_STALE_FACTOR": "3",
            "TICKWATCH_FEED_DOWN_THRESHOLD": "5",
        }
    )


def texts(slack: FakeSlack, method: str) -> list[str]:
    return [call.params.get("text", "") for call in slack.calls(method) if call.ok]


def feed_messages(ns: Namespace) -> list[dict]:
    return [json.loads(m.value) for m in ns.topic_messages(ns.settings.alerts_topic, expect=2, timeout=5)]


def test_a_24_7_feed_that_stops_is_stale_once_everywhere_and_recovers_in_place(namespace: Namespace):
    ns = namespace
    with FakeSlack() as slack, WebhookReceiver() as hooks:
        feed_env(ns, slack)
        subscriptions.create(ns.redis, ns.settings, subscriptions.SubscriptionSpec(url=hooks.url, events=FEED_EVENTS))
        ns.split_workers()
        ns.bridge()
        publish(live(["BTC-USD"], 3), ns.settings, progress=False)

        wait_for(lambda: texts(slack, "chat.postMessage"), timeout=30, what="the stale message")
        [stale] = texts(slack, "chat.postMessage")
        assert "*BTC-USD* feed silent" in stale and "24/7" in stale
        with ticking(ns, ["BTC-USD"], 6):  # it ticks again
            wait_for(lambda: texts(slack, "chat.update"), timeout=30, what="the message edited on recovery")
            wait_for(lambda: len(hooks.received) == 2, timeout=30, what="both webhook deliveries")
            time.sleep(2)  # and nothing more while it ticks: one episode, one message, one edit
            assert len(texts(slack, "chat.postMessage")) == 1
            [edited] = texts(slack, "chat.update")
            assert "*BTC-USD* feed back" in edited
            assert [json.loads(body)["type"] for _, body in hooks.received] == FEED_EVENTS
            assert [m["type"] for m in feed_messages(ns)] == FEED_EVENTS


def test_thirty_symbols_stopping_together_make_one_feed_down_message(namespace: Namespace):
    ns = namespace
    symbols = [f"C{i:02d}-USD" for i in range(30)]
    with FakeSlack() as slack:
        feed_env(ns, slack)
        ns.split_workers()
        ns.bridge()
        publish(live(symbols, 3), ns.settings, progress=False)

        wait_for(lambda: texts(slack, "chat.postMessage"), timeout=30, what="the feed down message")
        time.sleep(2)
        [down] = texts(slack, "chat.postMessage")  # one message, not thirty
        assert "Feed down:* 30 of 30 24/7 symbols silent" in down
        with ticking(ns, symbols, 6):
            wait_for(
                lambda: any("Feed back" in text for text in texts(slack, "chat.update")),
                timeout=30,
                what="the feed down message edited: all back",
            )
            assert len(texts(slack, "chat.postMessage")) == 1


def test_the_check_goes_on_when_the_worker_running_it_is_killed(namespace: Namespace):
    ns = namespace
    with FakeSlack() as slack:
        feed_env(ns, slack)
        ns.worker(2, "--queues", ns.settings.celery_queue)
        first = ns.worker(2, "--queues", ns.settings.alerts_queue, "--pool", "threads")
        ns.bridge()
        publish(live(["ETH-USD"], 3), ns.settings, progress=False)
        ns.stop(first, signal.SIGKILL)  # the only alerts worker, so the one running the check
        ns.worker(2, "--queues", ns.settings.alerts_queue, "--pool", "threads")
        wait_for(lambda: texts(slack, "chat.postMessage"), timeout=30, what="the stale message from the new worker")
        assert "*ETH-USD* feed silent" in texts(slack, "chat.postMessage")[0]
