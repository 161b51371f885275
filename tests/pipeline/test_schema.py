"""The tick contract: what is accepted, how it is normalised, and the reasons given for what is not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.schema import AlertEvent, Anomaly, InvalidTick, parse_tick


def test_a_valid_tick_is_normalised():
    tick = parse_tick(
        b'{"symbol": " btc-usd ", "timestamp": "2026-11-23T15:30:00+01:00", "price": 97000.5,'
        b' "volume": 0, "exchange": "ignored"}'
    )
    assert tick.symbol == "BTC-USD"
    assert tick.timestamp == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    assert (tick.price, tick.volume) == (97000.5, 0)


def test_naive_timestamps_are_utc_and_volume_is_optional():
    tick = parse_tick(b'{"symbol": "BRK.B", "timestamp": "2026-11-23 14:30:00", "price": 1}')
    assert tick.timestamp == datetime(2026, 11, 23, 14, 30, tzinfo=UTC) and tick.volume is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"{nope", "Invalid JSON"),
        (b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z"}', "price: Field required"),
        (
            b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z", "price": 0}',
            "price: Input should be greater than 0",
        ),
        (b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z", "price": NaN}', "price: Input should be a finite"),
        (b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z", "price": 1e999}', "price"),
        (b'{"symbol": "TSLA", "timestamp": "2026-11-23T14:30:00Z", "price": 1, "volume": -5}', "volume"),
        (
            b'{"symbol": "TOO LONG SYMBOL NAME 123", "timestamp": "2026-11-23T14:30:00Z", "price": 1}',
            "symbol: symbol must",
        ),
        (b'{"symbol": 42, "timestamp": "2026-11-23T14:30:00Z", "price": 1}', "symbol: symbol must be a string"),
        (b'{"symbol": "TSLA", "timestamp": 1700000000, "price": 1}', "timestamp: timestamp must be an ISO-8601"),
        (b'{"symbol": "TSLA", "timestamp": "yesterday", "price": 1}', "timestamp"),
        (b"[1, 2]", "Input should be an object"),
    ],
)
def test_invalid_ticks_say_why(raw: bytes, reason: str):
    with pytest.raises(InvalidTick) as caught:
        parse_tick(raw)
    assert reason in caught.value.reason


def test_alert_envelope_wraps_the_anomaly():
    now = datetime(2026, 11, 23, 14, 31, tzinfo=UTC)
    anomaly = Anomaly(
        id="tsla-drop-1",
        symbol="TSLA",
        rule="drop",
        timestamp=now,
        price=94,
        reference_price=100,
        reference_timestamp=now,
        change_pct=-6,
        threshold_pct=5,
        window_seconds=300,
        peak_price=94,
        peak_change_pct=-6,
        peak_timestamp=now,
        detected_at=now,
    )
    event = AlertEvent.for_anomaly(anomaly).model_dump(mode="json")
    assert event["type"] == "anomaly.detected" and event["id"] == "msg_tsla-drop-1"
    assert event["timestamp"] == "2026-11-23T14:31:00Z" and event["data"]["change_pct"] == -6
