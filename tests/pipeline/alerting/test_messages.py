"""Alert and storm messages: valid Block Kit (slack_sdk models validate), Slack's limits, every state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.models.blocks import Block

from pipeline.alerting.actions import AlertAction, MuteChoice, reason_value
from pipeline.alerting.messages import (
    MAX_BLOCKS,
    MAX_SECTION_CHARS,
    STORM_LINES,
    AlertContext,
    StormView,
    alert_message,
    alert_text,
    span,
    sparkline,
    storm_message,
)
from pipeline.schema import AckReason
from tests.factories import AT, tsla_crash

CONTEXT = AlertContext(
    sparkline=[250.0, 251.0, 249.0, 244.0, 238.0, 236.1],
    window_volume=36_000,
    usual_volume=12_000,
    earlier_alerts_24h=2,
)


def payload(blocks: list[Block]) -> list[dict]:
    """The JSON Slack receives, after checking every block parses back as the model it claims to be."""
    dicts = [block.to_dict() for block in blocks]
    for raw in dicts:
        assert Block.parse(raw).to_dict() == raw
    return dicts


def texts(blocks: list[dict]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b["type"] in ("header", "section"))


def actions(blocks: list[dict]) -> list[str]:
    return [element["action_id"] for b in blocks if b["type"] == "actions" for element in b["elements"]]


def test_an_open_alert_says_what_why_and_offers_every_action():
    text, blocks = alert_message(tsla_crash(), CONTEXT)
    body = payload(blocks)
    assert body[0]["type"] == "header" and body[0]["text"]["text"] == "📉 TSLA \u22125.7 % in 4 min"
    words = texts(body)
    assert "*236.10*" in words and "high of *250.40* at 14:27:05" in words
    assert "Peak so far: *230.60* (\u22127.9 %)" in words and "5.0 % within 5 min" in words
    assert "`" + sparkline(CONTEXT.sparkline) + "`" in words
    assert "*3.0\u00d7* the 7-day usual of 12,000" in words and "2 earlier alerts for TSLA" in words
    assert actions(body) == [
        AlertAction.ACKNOWLEDGE,
        AlertAction.ACKNOWLEDGE_AS,
        AlertAction.MUTE,
        AlertAction.HISTORY,
        AlertAction.ADJUST_THRESHOLD,
    ]
    why = next(e for b in body if b["type"] == "actions" for e in b["elements"] if e["type"] == "overflow")
    assert [o["value"] for o in why["options"]] == [reason_value("tsla-drop-1", r) for r in AckReason]
    assert [o["text"]["text"] for o in why["options"]][-1] == "Acknowledge: too sensitive"
    ack = next(e for b in body if b["type"] == "actions" for e in b["elements"])
    assert ack["style"] == "primary" and ack["value"] == "tsla-drop-1"
    mute = next(e for b in body if b["type"] == "actions" for e in b["elements"] if e["type"] == "static_select")
    assert [o["value"] for o in mute["options"]] == [c.value_for("tsla-drop-1") for c in MuteChoice]
    assert text.startswith("📉 TSLA \u22125.7 % in 4 min: 236.10 vs 250.40")


def test_acknowledged_resolved_and_muted_states_render_differently():
    acked = tsla_crash(status="acknowledged", acknowledged_by="U0123ABCD", acknowledged_at=AT.replace(minute=32))
    body = payload(alert_message(acked, CONTEXT)[1])
    assert "✅ Acknowledged by <@U0123ABCD> at 14:32." in texts(body)
    assert AlertAction.ACKNOWLEDGE not in actions(body) and AlertAction.MUTE in actions(body)

    resolved = tsla_crash(status="resolved", resolved_at=AT + timedelta(minutes=12))
    text, blocks = alert_message(resolved, CONTEXT)
    body = payload(blocks)
    assert "🟢 Recovered after 12 min" in texts(body) and "recovered after 12 min" in text
    assert actions(body) == [AlertAction.HISTORY, AlertAction.ACKNOWLEDGE_AS]  # only the history, and why
    reasoned = tsla_crash(status="resolved", resolved_at=AT, acknowledged_by="U0123ABCD", ack_reason="news")
    body = payload(alert_message(reasoned, CONTEXT)[1])
    assert actions(body) == [AlertAction.HISTORY] and "Acknowledged by <@U0123ABCD>: news." in texts(body)

    muted = payload(alert_message(tsla_crash(muted=True), AlertContext())[1])
    assert "is muted" in texts(muted) and AlertAction.MUTE not in actions(muted)
    assert "First alert for TSLA in 24 h." in texts(muted) and "last 5 min" not in texts(muted)  # no sparkline


def test_rise_and_small_prices_read_naturally():
    text, blocks = alert_message(
        tsla_crash(rule="rise", change_pct=6.2, price=0.000123, reference_price=0.000116),
        AlertContext(window_volume=10),
    )
    assert "📈 TSLA +6.2 %" in text and "0.000123" in text
    assert "no usual volume known yet" in texts(payload(blocks))


def test_a_storm_lists_the_largest_moves_first_within_slack_limits():
    members = [
        tsla_crash(id=f"s{i}-drop", symbol=f"SYM{i}", peak_change_pct=-(5 + i % 37 + i / 1000)) for i in range(200)
    ]
    view = StormView("storm-1", AT, 5, members)
    text, blocks = storm_message(view)
    body = payload(blocks)
    assert len(body) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in body if b["type"] == "section")
    lines = [line for b in body[2:] if b["type"] == "section" for line in b["text"]["text"].splitlines()]
    assert len(lines) == STORM_LINES
    largest = sorted(members, key=lambda m: m.peak_change_pct)
    assert [line.split("*")[1] for line in lines] == [m.symbol for m in largest[:STORM_LINES]]
    assert any("…and 160 more." in e["text"] for b in body if b["type"] == "context" for e in b["elements"])
    assert body[0]["text"]["text"] == "🌪️ Market storm: 200 alerts since 14:31:05 UTC"
    assert actions(body) == [AlertAction.STORM_ACKNOWLEDGE_ALL, AlertAction.STORM_MUTE_ALL]
    assert {e["value"] for b in body if b["type"] == "actions" for e in b["elements"]} == {"storm-1"}
    assert text.startswith(f"🌪️ Market storm: 200 alerts; largest: {largest[0].symbol}")


def test_a_storm_line_shows_each_members_state():
    members = [
        tsla_crash(id="a", symbol="AAA", status="resolved", resolved_at=AT),
        tsla_crash(id="b", symbol="BBB", acknowledged_by="U0123ABCD", peak_change_pct=-9.0),
    ]
    lines = texts(payload(storm_message(StormView("s", AT, 5, members))[1]))
    assert "*BBB* \u22129.0 %" in lines and "✅ <@U0123ABCD>" in lines and "🟢 recovered" in lines
    assert lines.index("BBB") < lines.index("AAA")


@pytest.mark.parametrize("symbol_count", [1, 41])
def test_long_texts_are_cut_to_the_limit_never_refused(symbol_count: int):
    huge = tsla_crash(acknowledged_by="x" * 5000)
    for blocks in (alert_message(huge, CONTEXT)[1], storm_message(StormView("s", AT, 5, [huge] * symbol_count))[1]):
        body = payload(blocks)
        assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in body if b["type"] == "section")


def test_text_fallback_covers_muted():
    assert alert_text(tsla_crash(muted=True)).endswith("(muted)")


def test_durations_read_naturally():
    assert [span(s) for s in (45, 237, 3900, 7200, 200_000)] == ["45 s", "4 min", "1 h 5 min", "2 h", "2 d 7 h"]


def test_sparkline_spans_the_bars():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5]) == "▄▄" and sparkline([]) == ""


def test_zscore_and_volume_alerts_say_what_their_rule_saw_in_its_unit():
    zscore = tsla_crash(
        id="tsla-zscore-1",
        rule="zscore",
        threshold_pct=4,
        change_pct=-2.3,
        peak_change_pct=-2.3,
        zscore=-4.62,
        reference_price=241.7,
    )
    volume = tsla_crash(
        id="tsla-volume-1",
        rule="volume",
        threshold_pct=5,
        change_pct=0.31,
        peak_change_pct=0.31,
        volume_ratio=6.34,
        reference_price=235.4,
    )

    z_text, z_blocks = alert_message(zscore, CONTEXT)
    v_text, v_blocks = alert_message(volume, CONTEXT)

    assert payload(z_blocks)[0]["text"]["text"] == "📉 TSLA \u22122.3 % (4.6 \u03c3) in 4 min"
    assert "a move of 4 \u03c3 (its usual volatility) within 5 min; this one 4.6 \u03c3." in texts(payload(z_blocks))
    assert payload(v_blocks)[0]["text"]["text"] == "📊 TSLA volume 6.3\u00d7 usual (+0.3 %) in 4 min"
    assert "5\u00d7 its usual volume within 5 min; this one 6.3\u00d7." in texts(payload(v_blocks))
    assert "window's first price" in texts(payload(v_blocks))  # not a high or low: the rule has no direction
    assert z_text.startswith("📉 TSLA \u22122.3 % (4.6 \u03c3)") and v_text.startswith("📊 TSLA volume 6.3\u00d7")
    _, storm = storm_message(StormView("storm-1", AT, 5, [zscore, volume, tsla_crash()], window_seconds=120))
    assert "More than 5 alerts reached this channel within 2 min" in texts(payload(storm))
    lines = texts(payload(storm)).splitlines()
    assert lines[-3:] == [
        "📉 *TSLA* \u22127.9 % · 230.60 from 250.40",
        "📉 *TSLA* \u22122.3 % (4.6 \u03c3) · 230.60 from 241.70",
        "📊 *TSLA* volume 6.3\u00d7 usual (+0.3 %) · 230.60 from 235.40",
    ]
