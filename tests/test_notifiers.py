"""Alert channels against real local peers: a fake Slack Web API server and a webhook receiver on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.notifiers import build, channel_names
from pipeline.notifiers.slack import SlackNotifier
from pipeline.notifiers.webhook import WebhookNotifier
from pipeline.schema import AlertEvent, Anomaly
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from tests.conftest import WebhookReceiver

AT = datetime(2026, 11, 23, 14, 31, tzinfo=UTC)
EVENT = AlertEvent.for_anomaly(Anomaly(
    id="tsla-drop-1", symbol="TSLA", rule="drop", timestamp=AT, price=94, reference_price=100,
    reference_timestamp=AT, change_pct=-6, threshold_pct=5, window_seconds=300, peak_price=94,
    peak_change_pct=-6, peak_timestamp=AT, detected_at=AT))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_channels_follow_the_settings():
    assert channel_names(Settings()) == ["kafka", "log"]
    configured = Settings(SLACK_BOT_TOKEN="xoxb-1", webhook_urls=["http://a/h", "http://b/h"])
    assert channel_names(configured) == ["kafka", "log", "slack", "webhook:http://a/h", "webhook:http://b/h"]
    with pytest.raises(ValueError, match="unknown alert channel"):
        build("pager", Settings())


def test_webhook_is_signed_per_standard_webhooks():
    receiver = WebhookReceiver()
    WebhookNotifier(receiver.url, SECRET).send(EVENT)
    headers, body = receiver.received[0]
    assert headers["webhook-id"] == "msg_tsla-drop-1"
    assert Webhook(SECRET).verify(body, headers)["data"]["symbol"] == "TSLA"
    tampered = body.replace(b"TSLA", b"AAPL")
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(tampered, headers)


def test_a_failing_webhook_raises_so_the_delivery_is_retried():
    receiver = WebhookReceiver(503)
    with pytest.raises(httpx.HTTPStatusError):
        WebhookNotifier(receiver.url, SECRET).send(EVENT)
    WebhookNotifier(receiver.url, SECRET).send(EVENT)  # the retry goes through, with the same webhook-id
    assert [h["webhook-id"] for h, _ in receiver.received] == ["msg_tsla-drop-1", "msg_tsla-drop-1"]


def test_slack_posts_block_kit_and_waits_out_a_rate_limit():
    with FakeSlack() as slack:
        slack.fail_next("chat.postMessage", status=429, retry_after=0)
        settings = Settings(SLACK_BOT_TOKEN="xoxb-test", slack_api_url=slack.url, slack_channel="#alerts")
        SlackNotifier(settings).send(EVENT)
        calls = slack.calls("chat.postMessage")
    assert [call.status for call in calls] == [429, 200]
    posted = calls[-1].params
    assert posted["channel"] == "#alerts" and posted["text"].startswith("📉 TSLA -6.00%")
    assert [block["type"] for block in posted["blocks"]] == ["header", "section", "context"]
    assert json.dumps(posted["metadata"]["event_payload"]) == '{"anomaly_id": "tsla-drop-1"}'
