"""Alert channels against real local peers: a fake Slack Web API server (webhooks: tests/test_webhooks*.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.alerting.channels import build, channel_names
from pipeline.schema import AlertEvent, Anomaly
from pipeline.settings import Settings

AT = datetime(2026, 11, 23, 14, 31, tzinfo=UTC)
EVENT = AlertEvent.for_anomaly(
    Anomaly(
        id="tsla-drop-1",
        symbol="TSLA",
        rule="drop",
        timestamp=AT,
        price=94,
        reference_price=100,
        reference_timestamp=AT,
        change_pct=-6,
        threshold_pct=5,
        window_seconds=300,
        peak_price=94,
        peak_change_pct=-6,
        peak_timestamp=AT,
        detected_at=AT,
    )
)


def test_channels_follow_the_settings():
    assert channel_names(Settings()) == ["kafka", "log"]
    assert channel_names(Settings(SLACK_BOT_TOKEN="xoxb-1")) == ["kafka", "log", "slack"]
    with pytest.raises(ValueError, match="unknown alert channel"):
        build("pager", Settings())


def test_the_removed_static_webhook_settings_fail_with_directions():
    for name in ("webhook_urls", "webhook_secret"):
        with pytest.raises(ValueError, match=r"were removed.*POST /v1/webhooks"):
            Settings(**{name: '["https://example.com/h"]'})
