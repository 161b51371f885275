"""Webhook subscriptions over the real Redis and Celery workers, with local receivers on loopback.

Deliveries are verified with the independent `standardwebhooks` package. Retry schedules and timeouts are
compressed through settings; everything else runs as in production. Tests that need a precise sequence of
attempts call `webhook_delivery.run` (what the Celery task runs) in this process; the others run a real
`tickwatch worker --queues alerts --pool threads`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.settings import Settings
from pipeline.webhooks import delivery as webhook_delivery
from pipeline.webhooks import delivery_log, subscriptions
from pipeline.webhooks.delivery import run
from pipeline.webhooks.ssrf import UnsafeURL
from pipeline.webhooks.subscriptions import SubscriptionSpec
from stack.fake_slack import FakeSlack
from stack.webhook_receiver import HANG, Reply, WebhookReceiver
from tests.conftest import Namespace, wait_for

LOOPBACK = '["127.0.0.0/8"]'


def event(n: int, symbol: str = "TSLA", kind: str = "anomaly.detected") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "type": kind,
        "id": f"msg_test-{n}",
        "timestamp": now,
        "data": {"id": f"test-{n}", "symbol": symbol, "detected_at": now},
    }


def configure(
    ns: Namespace, *, schedule: str = "[0, 0.3, 0.3]", timeout: float = 1.0, allow: bool = True, **extra: Any
) -> Settings:
    """The namespace's workers and this process, with a compressed schedule and loopback allowed."""
    ns.env.update({"TICKWATCH_WEBHOOK_RETRY_SCHEDULE": schedule, "TICKWATCH_WEBHOOK_TIMEOUT_SECONDS": str(timeout)})
    if allow:
        ns.env["TICKWATCH_WEBHOOK_ALLOW_NETWORKS"] = LOOPBACK
    ns.settings = ns.settings.model_copy(
        update={
            "webhook_retry_schedule": [float(x) for x in schedule.strip("[]").split(",")],
            "webhook_timeout_seconds": timeout,
            "webhook_allow_networks": [ip_network("127.0.0.0/8")] if allow else [],
            **extra,
        }
    )
    return ns.settings


def subscribe(ns: Namespace, url: str, **spec: Any) -> tuple[str, str]:
    created, secret = subscriptions.create(
        ns.redis,
        ns.settings,
        SubscriptionSpec(
            url=url, events=spec.pop("events", ["anomaly.detected", "anomaly.resolved", "digest.daily"]), **spec
        ),
    )
    return created.id, secret


def alerts_worker(ns: Namespace, threads: int = 4) -> subprocess.Popen:
    return ns.worker(threads, "--queues", ns.settings.alerts_queue, "--pool", "threads")


def log_of(ns: Namespace, subscription_id: str) -> list[delivery_log.Delivery]:
    return subscriptions.deliveries(ns.redis, subscription_id, limit=100)[0]


def test_deliveries_verify_with_the_subscribers_secret_also_across_a_rotation(namespace: Namespace):
    ns = namespace
    configure(ns)
    alerts_worker(ns)
    with WebhookReceiver() as hooks:
        sub, secret = subscribe(ns, hooks.url)
        assert subscriptions.dispatch(ns.redis, ns.settings, event(1)) == 1
        wait_for(lambda: len(hooks.received) == 1, timeout=30, what="first delivery")
        headers, body = hooks.received[0]
        assert Webhook(secret).verify(body, headers)["id"] == "msg_test-1"
        assert headers["webhook-id"] == "msg_test-1"

        new_secret, grace_ends = subscriptions.rotate_secret(ns.redis, ns.settings, sub)
        assert new_secret != secret and grace_ends > datetime.now(UTC) + timedelta(hours=23)
        subscriptions.dispatch(ns.redis, ns.settings, event(2))
        wait_for(lambda: len(hooks.received) == 2, timeout=30, what="delivery after the rotation")
        headers, body = hooks.received[1]
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert Webhook(new_secret).verify(body, headers)["id"] == "msg_test-2"
        assert Webhook(secret).verify(body, headers)["id"] == "msg_test-2"  # the grace period

        wait_for(lambda: all(d.status == "succeeded" for d in log_of(ns, sub)), timeout=10, what="log updated")
        log = log_of(ns, sub)
        assert [d.event_id for d in log] == ["msg_test-2", "msg_test-1"]  # newest first
        assert all(d.attempts == 1 and d.response_code == 204 and d.latency_ms is not None for d in log)
    # At rest the secrets are encrypted: neither appears in Redis.
    raw = ns.redis.hget(subscriptions.SUBSCRIPTIONS, sub)
    assert secret.encode() not in raw and new_secret.encode() not in raw


def test_after_the_grace_period_only_the_new_secret_signs(namespace: Namespace):
    ns = namespace
    configure(ns, webhook_secret_grace_seconds=0)
    with WebhookReceiver() as hooks:
        sub, old = subscribe(ns, hooks.url)
        new, _ = subscriptions.rotate_secret(ns.redis, ns.settings, sub)
        subscriptions.dispatch(ns.redis, ns.settings, event(1))
        assert run(ns.redis, ns.settings, (delivery_log.delivery_id(sub, "msg_test-1"), 0)) == "succeeded"
    headers, body = hooks.received[0]
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert Webhook(new).verify(body, headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(old).verify(body, headers)


def test_retries_on_500_and_timeout_keep_the_webhook_id_and_410_disables(namespace: Namespace):
    ns = namespace
    configure(ns, schedule="[0, 0.3, 0.3, 0.3, 5]")  # Retry-After is capped at the longest step: 5 s
    alerts_worker(ns)
    with WebhookReceiver(500, HANG, Reply(503, {"retry-after": "1"}), 204) as flaky, WebhookReceiver(410) as gone:
        flaky_id, _ = subscribe(ns, flaky.url)
        gone_id, _ = subscribe(ns, gone.url)
        assert subscriptions.dispatch(ns.redis, ns.settings, event(1)) == 2
        wait_for(lambda: log_of(ns, flaky_id)[0].status == "succeeded", timeout=30, what="delivery after retries")
        delivery = log_of(ns, flaky_id)[0]
        assert delivery.attempts == 4
        assert [a.response_code for a in delivery.history] == [500, None, 503, 204]
        assert "timed out" in delivery.history[1].error
        # Retry-After: 1 was honoured although the schedule says 0.3 s
        assert (delivery.history[3].at - delivery.history[2].at).total_seconds() >= 0.95
        assert {h["webhook-id"] for h, _ in flaky.received} == {"msg_test-1"}

        wait_for(lambda: not subscriptions.get(ns.redis, gone_id).enabled, timeout=30, what="410 disabling")
        assert subscriptions.get(ns.redis, gone_id).disabled_reason == "the endpoint answered 410 Gone"
        assert log_of(ns, gone_id)[0].status == "failed" and log_of(ns, gone_id)[0].attempts == 1
        assert subscriptions.dispatch(ns.redis, ns.settings, event(2)) == 1  # the disabled one gets nothing
        time.sleep(1)
        assert len(gone.received) == 1


def test_a_spent_schedule_fails_then_replay_and_recover_resend_what_failed(namespace: Namespace):
    ns = namespace
    settings = configure(ns, schedule="[0, 0.1]")
    with WebhookReceiver(500, 500, 500, 500, 204) as hooks:
        sub, secret = subscribe(ns, hooks.url)
        started = datetime.now(UTC)
        for n in (1, 2, 3):
            subscriptions.dispatch(ns.redis, settings, event(n))
        first, second = (delivery_log.delivery_id(sub, f"msg_test-{n}") for n in (1, 2))
        assert run(ns.redis, settings, (first, 0)) == "retrying"
        time.sleep(0.15)
        assert run(ns.redis, settings, (first, 0)) == "stale"  # an old copy of the task does nothing
        assert run(ns.redis, settings, (first, 1)) == "failed"
        assert run(ns.redis, settings, (second, 0)) == "retrying"
        assert run(ns.redis, settings, (second, 1)) == "failed"
        assert run(ns.redis, settings, (delivery_log.delivery_id(sub, "msg_test-3"), 0)) == "succeeded"
        assert [d.status for d in log_of(ns, sub)] == ["succeeded", "failed", "failed"]

        replayed = subscriptions.replay(ns.redis, settings, sub, first)
        assert replayed.status == "pending"
        assert run(ns.redis, settings, (first, 2)) == "succeeded"
        assert subscriptions.recover(ns.redis, settings, sub, started) == 1  # only the second is still failed
        assert run(ns.redis, settings, (second, 2)) == "succeeded"
        assert subscriptions.recover(ns.redis, settings, sub, started) == 0
        resent = [Webhook(secret).verify(body, headers)["id"] for headers, body in hooks.received[5:]]
        assert resent == ["msg_test-1", "msg_test-2"]  # the same webhook-ids, verifiable as before
        assert log_of(ns, sub)[1].attempts == 3  # two failed, one replayed


def test_replay_refuses_a_delivery_still_in_progress_and_unknown_ids(namespace: Namespace):
    ns = namespace
    settings = configure(ns)
    sub, _ = subscribe(ns, "http://127.0.0.1:9/never-called")
    subscriptions.dispatch(ns.redis, settings, event(1))
    with pytest.raises(subscriptions.Conflict, match="still being attempted"):
        subscriptions.replay(ns.redis, settings, sub, delivery_log.delivery_id(sub, "msg_test-1"))
    with pytest.raises(subscriptions.NotFound):
        subscriptions.replay(ns.redis, settings, sub, "dlv_unknown")
    with pytest.raises(subscriptions.NotFound):
        subscriptions.deliveries(ns.redis, "sub_unknown")


def test_a_hanging_subscriber_does_not_delay_another(namespace: Namespace):
    ns = namespace
    configure(ns, timeout=8.0)
    alerts_worker(ns, threads=4)
    with WebhookReceiver(HANG) as dead, WebhookReceiver() as healthy:
        dead_id, _ = subscribe(ns, dead.url)
        subscribe(ns, healthy.url)
        time.sleep(2)  # the worker is up
        sent_at = time.time()
        for n in range(8):  # more events than the worker has threads
            subscriptions.dispatch(ns.redis, ns.settings, event(n))
        wait_for(lambda: len(healthy.receipts) == 8, timeout=30, what="healthy deliveries")
        slowest = max(r.at for r in healthy.receipts) - sent_at
        assert slowest < 2.0, f"the healthy subscriber waited {slowest:.1f}s behind the dead one"
        assert len(dead.receipts) == 1  # one request in flight per endpoint: the rest wait in Redis, not threads
        assert sum(d.status == "pending" for d in log_of(ns, dead_id)) == 8


def test_events_reach_the_subscriptions_that_want_them_once(namespace: Namespace):
    ns = namespace
    configure(ns)
    everything, _ = subscribe(ns, "http://127.0.0.1:9/a")
    tsla_drops, _ = subscribe(ns, "http://127.0.0.1:9/b", events=["anomaly.detected"], symbols=["tsla"])
    digests, _ = subscribe(ns, "http://127.0.0.1:9/c", events=["digest.daily"], symbols=["AAPL"])
    paused, _ = subscribe(ns, "http://127.0.0.1:9/d")
    subscriptions.update(ns.redis, ns.settings, paused, subscriptions.SubscriptionPatch(enabled=False))

    assert subscriptions.dispatch(ns.redis, ns.settings, event(1, "TSLA")) == 2
    assert ns.redis.llen(ns.settings.alerts_queue) == 1  # one task carries both deliveries
    ns.redis.delete(ns.settings.alerts_queue)  # as if the process died before its tasks reached the broker
    assert subscriptions.dispatch(ns.redis, ns.settings, event(1, "TSLA")) == 0  # the same event: no new delivery
    assert ns.redis.llen(ns.settings.alerts_queue) == 1  # ...but the never-attempted ones are queued again
    assert subscriptions.dispatch(ns.redis, ns.settings, event(2, "AAPL")) == 1
    assert subscriptions.dispatch(ns.redis, ns.settings, event(3, "TSLA", "anomaly.resolved")) == 1
    digest = {
        "type": "digest.daily",
        "id": "msg_digest-2026-11-24",
        "timestamp": "2026-11-24T21:30:00Z",
        "data": {"day": "2026-11-24"},
    }
    assert subscriptions.dispatch(ns.redis, ns.settings, digest) == 2  # no symbol: every digest subscriber
    assert [d.event_id for d in log_of(ns, tsla_drops)] == ["msg_test-1"]
    assert [d.event_id for d in log_of(ns, digests)] == ["msg_digest-2026-11-24"]
    assert len(log_of(ns, everything)) == 4 and log_of(ns, paused) == []


def test_subscriptions_are_validated_patched_and_deleted(namespace: Namespace):
    ns = namespace
    settings = configure(ns, allow=False)
    with pytest.raises(UnsafeURL, match=r"127\.0\.0\.1 is loopback"):
        subscribe(ns, "http://127.0.0.1:9/h")
    with pytest.raises(ValueError, match="symbol must be"):
        SubscriptionSpec(url="https://example.com/h", events=["anomaly.detected"], symbols=["not a symbol"])
    configure(ns)
    sub, _ = subscribe(ns, "http://127.0.0.1:9/h", description="desk")
    patched = subscriptions.update(
        ns.redis, ns.settings, sub, subscriptions.SubscriptionPatch(symbols=["btc-usd"], description="crypto desk")
    )
    assert patched.symbols == ["BTC-USD"] and patched.description == "crypto desk" and patched.url.endswith("/h")
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.1 is private"):
        subscriptions.update(ns.redis, settings, sub, subscriptions.SubscriptionPatch(url="http://10.0.0.1/h"))
    subscriptions.dispatch(ns.redis, ns.settings, event(1, "BTC-USD"))
    subscriptions.delete(ns.redis, sub)
    with pytest.raises(subscriptions.NotFound):
        subscriptions.get(ns.redis, sub)
    assert run(ns.redis, ns.settings, (delivery_log.delivery_id(sub, "msg_test-1"), 0)) == "stale"
    assert subscriptions.list_all(ns.redis) == []


def test_an_endpoint_failing_too_long_is_disabled_with_a_notice_in_slack(namespace: Namespace):
    ns = namespace
    with FakeSlack() as slack, WebhookReceiver(500) as hooks:
        settings = configure(
            ns,
            schedule="[0, 0.1, 0.1]",
            webhook_disable_after_seconds=1,
            slack_bot_token="xoxb-test",
            slack_api_url=slack.url,
            slack_channel="#ops",
        )
        sub, _ = subscribe(ns, hooks.url)
        subscriptions.dispatch(ns.redis, settings, event(1))
        job = delivery_log.delivery_id(sub, "msg_test-1")
        assert run(ns.redis, settings, (job, 0)) == "retrying"
        time.sleep(1.1)
        assert run(ns.redis, settings, (job, 1)) == "failed"
        stored = subscriptions.get(ns.redis, sub)
        assert not stored.enabled and stored.disabled_reason.startswith("failing for 1s without a success")
        posts = slack.wait_for("chat.postMessage", 1, timeout=5)
        assert posts[0].params["channel"] == "#ops" and sub in posts[0].params["text"]
        # Re-enabling restarts the clock: the next failure is not a disabling one.
        subscriptions.update(ns.redis, settings, sub, subscriptions.SubscriptionPatch(enabled=True))
        assert subscriptions.get(ns.redis, sub).disabled_reason is None
        subscriptions.dispatch(ns.redis, settings, event(2))
        assert run(ns.redis, settings, (delivery_log.delivery_id(sub, "msg_test-2"), 0)) == "retrying"


def test_a_scheduled_retry_survives_a_worker_killed_meanwhile(namespace: Namespace):
    ns = namespace
    configure(ns, schedule="[0, 3]")
    with WebhookReceiver(503, 204) as hooks:
        sub, secret = subscribe(ns, hooks.url)
        first = alerts_worker(ns)
        subscriptions.dispatch(ns.redis, ns.settings, event(1))
        wait_for(lambda: log_of(ns, sub)[0].attempts == 1, timeout=30, what="the first, failing attempt")
        ns.stop(first, signal.SIGKILL)  # the retry waits in Redis, not in the worker
        alerts_worker(ns)
        wait_for(lambda: log_of(ns, sub)[0].status == "succeeded", timeout=30, what="the retry by a new worker")
    assert [Webhook(secret).verify(body, headers)["id"] for headers, body in hooks.received] == ["msg_test-1"] * 2


def test_an_endless_answer_holds_a_delivery_no_longer_than_the_timeout(namespace: Namespace):
    # A receiver that answers 200 and then drips a body forever: the read timeout alone would never fire.
    settings = configure(namespace, timeout=1.0)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        with contextlib.suppress(OSError):
            while not stop.wait(0.05):
                connection.sendall(b"400\r\n" + b"x" * 0x400 + b"\r\n")
        connection.close()

    threading.Thread(target=drip, daemon=True).start()
    sub, _ = subscribe(namespace, f"http://127.0.0.1:{server.getsockname()[1]}/hook")
    subscriptions.dispatch(namespace.redis, settings, event(1))
    record = delivery_log.load(namespace.redis, log_of(namespace, sub)[0].id)
    sending = webhook_delivery.loop.submit(
        webhook_delivery.send(settings, subscriptions.load(namespace.redis, sub), record, datetime.now(UTC))
    )
    try:
        attempt, _ = sending.result(timeout=3)  # cut off at the 1 s timeout, not read forever
    finally:
        stop.set()
        server.close()
    assert attempt.response_code == 200 and attempt.error is None
