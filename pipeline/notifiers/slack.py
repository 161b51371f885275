"""Alerts to a Slack channel with chat.postMessage (Block Kit), via slack_sdk and its retry handlers."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from pipeline.messages import alert_blocks, alert_text
from pipeline.schema import AlertEvent
from pipeline.settings import Settings


def web_client(settings: Settings) -> WebClient:
    """A WebClient for the configured API URL that waits out 429s (Retry-After) and retries dropped links."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3), ConnectionErrorRetryHandler()],
    )


class SlackNotifier:
    def __init__(self, settings: Settings) -> None:
        self.client = web_client(settings)
        self.channel = settings.slack_channel

    def send(self, event: AlertEvent) -> None:
        self.client.chat_postMessage(
            channel=self.channel,
            text=alert_text(event.data),
            blocks=alert_blocks(event.data),
            metadata={"event_type": event.type, "event_payload": {"anomaly_id": event.data.id}},
            unfurl_links=False,
        )
