"""Alerts as structured log lines: always on, so every alert is visible even with no channel set up."""

from __future__ import annotations

import logging

from pipeline import logs
from pipeline.alerting.messages import alert_text
from pipeline.schema import AlertEvent

logger = logging.getLogger("tickwatch.alerts")


class LogNotifier:
    def send(self, event: AlertEvent) -> None:
        logger.warning(
            "%s %s",
            event.type,
            alert_text(event.data),
            extra=logs.fields(
                event_id=event.id,
                anomaly_id=event.data.id,
                symbol=event.data.symbol,
                alert=event.model_dump(mode="json"),
            ),
        )
