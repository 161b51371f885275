"""Alert deliveries against a misbehaving Slack (the local fake), over the real Redis and Elasticsearch.

The delivery task runs in this process (what a worker thread runs) against a test namespace, so each Slack
failure's handling is seen call by call: refusals no retry can fix, too-rich messages, rate limits and the
circuit breaker. tests/pipeline/alerting/test_slack_outage.py plays whole outages through real workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from pipeline import keys
from pipeline.alerting import slack_errors, tasks
from pipeline.metrics import RedisCollector
from pipeline.schema import AlertEvent
from pipeline.settings import get_settings
from pipeline.worker import app as spine
from stack.fake_slack import FakeSlack, Outage
from tests.conftest import Namespace
from tests.factories import tsla_crash

CHANNEL = "#alerts"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def worker_here(namespace: Namespace, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Namespace]:
    """This process plays an alerts worker of `namespace`, with Slack configured."""
    for key, value in namespace.env.items():
        if key.startswith("TICKWATCH_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("TICKWATCH_SLACK_API_URL", slack.url)
    monkeypatch.setenv("TICKWATCH_SLACK_CHANNEL", CHANNEL)
    monkeypatch.setenv("TICKWATCH_SLACK_CIRCUIT_COOLOFF_SECONDS", "60")
    caches = (get_settings, spine.context, tasks.notifier)
    for cache in caches:
        cache.cache_clear()
    yield namespace
    for cache in caches:
        cache.cache_clear()


def alert(n: int) -> dict:
    return AlertEvent.for_anomaly(tsla_crash(id=f"tsla-drop-{n}")).model_dump(mode="json")


def slack_errors_counted(ns: Namespace) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(RedisCollector(ns.redis, keys.STATS))
    family = next(f for f in registry.collect() if f.name == "tickwatch_slack_errors")
    return {s.labels["error"]: s.value for s in family.samples if s.name.endswith("_total")}


@pytest.mark.parametrize("code", sorted(slack_errors.PERMANENT))
def test_a_refusal_no_retry_can_fix_is_told_once_and_not_retried(code, worker_here, slack, caplog):
    ns = worker_here
    slack.outage(Outage(until=time.monotonic() + 60, error=code, methods=("chat.postMessage",)))
    with caplog.at_level(logging.ERROR, logger="pipeline.alerting.slack_errors"):
        assert tasks.deliver.run("slack", alert(1)) == "refused"
        assert tasks.deliver.run("slack", alert(2)) == "refused"
    assert len(slack.calls("chat.postMessage")) == 2  # one call per alert: nothing retried
    assert ns.redis.zcard(keys.TASKS_DUE) == 0
    fix = slack_errors.PERMANENT[code].format(channel=CHANNEL)
    assert slack_errors.problems(ns.redis) == {code: fix}  # what /readyz shows admins
    told = [r.getMessage() for r in caplog.records]
    assert told == [f"Slack refused an alert with {code}, which retrying cannot fix: {fix}"]
    assert slack_errors_counted(ns) == {code: 2.0}

    slack.end_outages()  # fixed
    assert tasks.deliver.run("slack", alert(3)) == "sent"
    assert slack_errors.problems(ns.redis) == {}  # a delivery went through: nothing left to fix


def test_not_in_channel_says_to_invite_the_bot(worker_here, slack):
    slack.outage(Outage(until=time.monotonic() + 60, error="not_in_channel", methods=("chat.postMessage",)))
    tasks.deliver.run("slack", alert(1))
    assert slack_errors.problems(worker_here.redis)["not_in_channel"].startswith("invite the bot to #alerts")


@pytest.mark.parametrize("code", ["msg_too_long", "invalid_blocks"])
def test_a_message_slack_refuses_for_its_blocks_goes_out_as_plain_text(code, worker_here, slack):
    slack.outage(Outage(until=time.monotonic() + 60, error=code, methods=("chat.postMessage",), blocks_only=True))
    assert tasks.deliver.run("slack", alert(1)) == "sent"
    refused, plain = slack.calls("chat.postMessage")
    assert refused.params.get("blocks") and refused.response["error"] == code
    assert not plain.params.get("blocks") and plain.ok and "TSLA" in plain.params["text"]


def test_rate_limits_wait_in_redis_and_open_the_circuit(worker_here, slack):
    ns = worker_here
    slack.outage(Outage(until=time.monotonic() + 60, status=429, error="ratelimited", retry_after=7))
    started = time.time()
    for n in (1, 2, 3):
        assert tasks.deliver.run("slack", alert(n)) == "retrying"
    due = ns.redis.zrange(keys.TASKS_DUE, 0, -1, withscores=True)
    retries = [score for member, score in due if b'"deliver"' in member or b"tickwatch.deliver" in member]
    assert len(retries) == 3 and min(retries) >= started + 7  # never sooner than Retry-After
    assert tasks.deliver.run("slack", alert(4)) == "waiting"  # the circuit opened after 3 failures
    assert len(slack.calls("chat.postMessage")) == 3  # the fourth never reached Slack
    assert ns.redis.get(keys.delivered("slack", "msg_tsla-drop-4")) is None  # not claimed: it will go later
