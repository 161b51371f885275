"""Alert fan-out channels. Each takes the same AlertEvent envelope; each is delivered by its own Celery
task (pipeline.alerting.tasks.deliver) so a failing channel is retried with backoff and never blocks the others.
Webhooks are not a channel here: they are subscriptions (pipeline.webhooks.subscriptions.dispatch).
"""

from __future__ import annotations

from typing import Protocol

from pipeline.context import Context
from pipeline.schema import AlertEvent
from pipeline.settings import Settings


class Notifier(Protocol):
    """Send one alert; raise to have the delivery retried."""

    def send(self, event: AlertEvent) -> None: ...


def channel_names(settings: Settings) -> list[str]:
    """The channels configured now: `kafka` and `log` always, Slack with a token."""
    names = ["kafka", "log"]
    if settings.slack_bot_token:
        names.append("slack")
    return names


def build(name: str, ctx: Context) -> Notifier:
    """The notifier behind a channel name (imports stay lazy so a worker loads only what it uses)."""
    if name == "kafka":
        from pipeline.alerting.channels.kafka import KafkaNotifier

        return KafkaNotifier(ctx.settings)
    if name == "log":
        from pipeline.alerting.channels.log import LogNotifier

        return LogNotifier()
    if name == "slack":
        from pipeline.alerting.channels.slack import SlackChannel

        return SlackChannel(ctx)
    raise ValueError(f"unknown alert channel {name!r}")
