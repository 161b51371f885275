"""Alert messages: valid Block Kit (slack_sdk models validate), words from the templates."""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.models.blocks import Block

from pipeline.messages import alert_blocks, alert_text, duration
from pipeline.schema import Anomaly

AT = datetime(2026, 11, 23, 14, 31, 5, tzinfo=UTC)


def anomaly(**changes) -> Anomaly:
    fields = dict(id="tsla-drop-1", symbol="TSLA", rule="drop", timestamp=AT, price=236.1, volume=1200,
                  reference_price=250.4, reference_timestamp=datetime(2026, 11, 23, 14, 28, tzinfo=UTC),
                  change_pct=-5.71, threshold_pct=5, window_seconds=300, peak_price=230, peak_change_pct=-8.1,
                  peak_timestamp=AT, detected_at=AT)
    return Anomaly(**{**fields, **changes})


def test_blocks_are_valid_block_kit_and_say_what_happened():
    blocks = alert_blocks(anomaly())
    for block in blocks:
        block.validate_json()
        assert Block.parse(block.to_dict()) is not None
    payload = [block.to_dict() for block in blocks]
    assert [b["type"] for b in payload] == ["header", "section", "context"]
    assert payload[0]["text"]["text"] == "📉 TSLA fell 5.71% in 5 min"
    assert "*236.10*" in payload[1]["text"]["text"] and "high of 250.40 at 14:28:00" in payload[1]["text"]["text"]
    assert "tsla-drop-1" in payload[2]["elements"][0]["text"] and "volume 1,200" in payload[2]["elements"][0]["text"]


def test_text_fallback_covers_rise_and_muted():
    text = alert_text(anomaly(rule="rise", change_pct=6.2, muted=True))
    assert text.startswith("📈 TSLA +6.20% in 5 min") and text.endswith("(muted)")


def test_durations_read_naturally():
    assert [duration(s) for s in (90, 300, 3600, 5400)] == ["90 s", "5 min", "1 h", "90 min"]
