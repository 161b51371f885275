"""Alerts POSTed to subscriber URLs, signed per the Standard Webhooks spec (standardwebhooks library)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from pipeline.schema import AlertEvent


class WebhookNotifier:
    def __init__(self, url: str, secret: str | None) -> None:
        self.url = url
        self.signer = Webhook(secret) if secret else None

    def send(self, event: AlertEvent) -> None:
        body = event.to_json().decode()
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": event.id,  # the same on every retry, so receivers can deduplicate
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if self.signer:
            headers["webhook-signature"] = self.signer.sign(event.id, sent_at, body)
        response = httpx.post(self.url, content=body, headers=headers, timeout=10)
        response.raise_for_status()
