"""Pure parts of webhook delivery: the retry schedule, Retry-After, and signatures with two secrets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.settings import Settings
from pipeline.webhooks.delivery import next_delay, retry_after_seconds, signature_header, webhook_headers
from pipeline.webhooks.subscriptions import new_secret

SPEC_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]


def test_the_default_schedule_is_the_specs():
    assert Settings().webhook_retry_schedule == SPEC_SCHEDULE


def test_each_retry_waits_its_step_with_jitter_and_the_schedule_ends():
    rng = random.Random(7)
    for made in range(1, len(SPEC_SCHEDULE)):
        delays = [next_delay(made, SPEC_SCHEDULE, None, rng) for _ in range(200)]
        step = SPEC_SCHEDULE[made]
        assert all(0.9 * step <= d <= 1.1 * step for d in delays)
        assert max(delays) - min(delays) > 0.1 * step  # jittered, so retries of many endpoints spread out
    assert next_delay(len(SPEC_SCHEDULE), SPEC_SCHEDULE, None, rng) is None
    assert next_delay(0, SPEC_SCHEDULE, None, rng) == 0  # the first attempt is immediate


def test_retry_after_is_honoured_but_capped_at_the_longest_step():
    assert next_delay(1, SPEC_SCHEDULE, 120, random.Random(1)) == 120  # later than the 5 s step: as asked
    assert next_delay(2, SPEC_SCHEDULE, 1, random.Random(1)) >= 270  # sooner than the step: the step wins
    assert next_delay(1, SPEC_SCHEDULE, 10 * 86400, random.Random(1)) == 86400


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30
    assert retry_after_seconds("Tue, 24 Nov 2026 12:02:00 GMT", now) == 120
    assert retry_after_seconds("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_during_a_rotation_both_secrets_verify_and_a_third_does_not():
    old, new = new_secret(), new_secret()
    at = datetime.now(UTC)
    body = '{"type":"anomaly.detected","id":"msg_x"}'
    headers = webhook_headers("msg_x", body, [new, old], at)
    assert headers["webhook-signature"].count("v1,") == 2 and " " in headers["webhook-signature"]
    assert Webhook(old).verify(body, headers)["id"] == "msg_x"
    assert Webhook(new).verify(body, headers)["id"] == "msg_x"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body.replace("msg_x", "msg_y"), headers)


def test_a_signature_is_bound_to_its_timestamp():
    secret = new_secret()
    at = datetime.now(UTC)
    headers = webhook_headers("msg_x", "{}", [secret], at)
    headers["webhook-timestamp"] = str(int((at - timedelta(seconds=1)).timestamp()))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify("{}", headers)
    assert signature_header("msg_x", "{}", [secret], at).startswith("v1,")


def test_secrets_are_standard_webhooks_secrets():
    secret = new_secret()
    assert secret.startswith("whsec_") and secret != new_secret()
    assert len(Webhook(secret)._whsecret) == 32
