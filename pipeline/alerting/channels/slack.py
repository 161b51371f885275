"""Alerts in Slack: the channel hands each lifecycle event to the alert-message service, which posts the
episode's one message or edits it (pipeline.alerting.slack_messages)."""

from __future__ import annotations

from pipeline.alerting.slack_messages import AlertMessages
from pipeline.context import Context
from pipeline.schema import AlertEvent


class SlackChannel:
    def __init__(self, ctx: Context) -> None:
        self.messages = AlertMessages(ctx)

    def send(self, event: AlertEvent) -> None:
        self.messages.post(event)
