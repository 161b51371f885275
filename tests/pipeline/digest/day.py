"""A known market day for the digest tests (main env and Airflow env): ticks, anomalies, audit entries and dead
letters written straight into a namespace's indices and DLQ topic, and the numbers they imply.

The day is Friday 2026-11-20 (UTC); the market trades 14:30-21:00, one tick a minute per symbol:
- AAA opens 100, dips to 90 at 16:00, peaks at 104 at 19:00, closes 102; ten of its ticks arrive late.
- BBB opens 50 and slides linearly to 45 (-10 %), its low at the close.
- CCC opens 20, closes 21 but stops at 17:00 (silent to the end), muted by bob at 15:00 "halted"; one bad print
  at 2.0 (flagged suspect by detection) must not become its low.
- DDD opens 10, has no tick from 15:00 to 16:30 (a 90-minute gap), closes 10.
Ticks outside the day (the 19th and the 21st) must not count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from kafka import KafkaProducer

from pipeline import store
from pipeline.audit import Actor, Change
from pipeline.schema import Anomaly, StoredTick, to_ms
from pipeline.settings import Settings

DAY = date(2026, 11, 20)
OPEN = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
MINUTES = 390  # 14:30 .. 20:59


def _price(symbol: str, minute: int) -> float | None:
    """The seeded price of `symbol` at OPEN + minute, None when it does not trade then."""
    if symbol == "AAA":
        if minute == 90:
            return 90.0
        if minute == 270:
            return 104.0
        return 102.0 if minute == MINUTES - 1 else 100.0 + (minute % 3)
    if symbol == "BBB":
        return round(50 - 5 * minute / (MINUTES - 1), 4)
    if symbol == "CCC":
        return (21.0 if minute == 150 else 20.0) if minute <= 150 else None
    if symbol == "DDD":
        return None if 30 <= minute < 120 else 10.0
    raise ValueError(symbol)


SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


@dataclass(frozen=True)
class Expected:
    symbols: int = 4
    ticks: int = sum(_price(s, m) is not None for s in SYMBOLS for m in range(MINUTES))
    late: int = 10
    anomalies: int = 3
    acknowledged: int = 2  # alice's, and dave's on an anomaly that has resolved since
    suspect: int = 1
    dead_letters: int = 3


def _tick(
    indices: store.Indices,
    symbol: str,
    at: datetime,
    price: float,
    late: bool,
    offset: int,
    suspect_reason: str | None = None,
) -> dict:
    return store.tick_action(
        indices,
        StoredTick(
            **{
                "symbol": symbol,
                "ts": to_ms(at),
                "price": price,
                "volume": 100.0,
                "late": late,
                "partition": 0,
                "offset": offset,
                "published": None,
                "suspect_reason": suspect_reason,
            }
        ),
    )


def _anomaly(symbol: str, at: datetime, status: str, *, muted: bool = False, by: str | None = None) -> Anomaly:
    return Anomaly(
        id=f"{symbol}-drop-{to_ms(at)}",
        symbol=symbol,
        rule="drop",
        timestamp=at,
        price=90.0,
        reference_price=100.0,
        reference_timestamp=at - timedelta(minutes=2),
        change_pct=-10.0,
        threshold_pct=5.0,
        window_seconds=300,
        peak_price=90.0,
        peak_change_pct=-10.0,
        peak_timestamp=at,
        detected_at=at,
        muted=muted,
        status=status,
        acknowledged_by=by,
        acknowledged_at=at + timedelta(minutes=5) if by else None,
    )


def seed(settings: Settings) -> Expected:
    """Write the day into the namespace of `settings` (indices and DLQ topic must exist) and refresh."""
    es = store.connect(settings)
    indices = store.Indices(settings.index_prefix)
    actions = []
    for symbol in SYMBOLS:
        for minute in range(MINUTES):
            price = _price(symbol, minute)
            if price is not None:
                late = symbol == "AAA" and 200 <= minute < 210
                actions.append(_tick(indices, symbol, OPEN + timedelta(minutes=minute), price, late, minute))
        # the neighbouring days: must not count
        actions.append(_tick(indices, symbol, OPEN - timedelta(days=1), 1.0, True, 0))
        actions.append(_tick(indices, symbol, OPEN + timedelta(days=1), 1000.0, True, 0))
    actions.append(
        _tick(
            indices,
            "CCC",
            OPEN + timedelta(minutes=60, seconds=30),
            2.0,
            False,
            999,
            suspect_reason="isolated print: -90% and back",
        )
    )
    store.write(es, actions)
    anomalies = [
        _anomaly("AAA", OPEN + timedelta(minutes=90), "acknowledged", by="alice"),
        _anomaly("AAA", OPEN + timedelta(minutes=300), "open"),
        _anomaly("BBB", OPEN + timedelta(minutes=380), "resolved", muted=True, by="dave"),
        _anomaly("BBB", OPEN - timedelta(days=1), "open"),  # the day before
    ]
    store.write(es, [store.anomaly_action(indices, a) for a in anomalies])
    bob = Actor("bob", "slack", "U0BOB00001")
    for change in (
        Change(
            "mute", "CCC", None, {"until": None, "by": "bob", "reason": "halted"}, bob, OPEN + timedelta(minutes=30)
        ),
        Change(
            "mute",
            "DDD",
            None,
            {"until": "2026-11-20T16:00:00.000Z", "by": "bob", "reason": ""},
            bob,
            OPEN + timedelta(minutes=40),
        ),
        Change(
            "mute",
            "EEE",
            None,
            {"until": None, "by": "carol", "reason": ""},
            Actor("carol", "api"),
            OPEN - timedelta(days=2),
        ),
        Change(
            "unmute",
            "EEE",
            {"until": None, "by": "carol", "reason": ""},
            None,
            Actor("carol", "api"),
            OPEN - timedelta(days=1),
        ),
    ):
        es.index(index=indices.audit, document=change.document())
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for at in (
        OPEN - timedelta(days=1),
        OPEN,
        OPEN + timedelta(hours=1),
        OPEN + timedelta(hours=2),
        OPEN + timedelta(days=1),
    ):
        producer.send(settings.dlq_topic, key=b"X", value=b"not json", timestamp_ms=to_ms(at))
    producer.flush()
    producer.close()
    for index in (indices.ticks, indices.anomalies, indices.audit):
        es.indices.refresh(index=index)
    return Expected()
