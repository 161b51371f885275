"""The stored world the Slack bot tests share: two hours of TSLA (two dips, each with a stored alert and its
Slack message), AAPL (flat), VOLM (one volume spike, one flagged bad print) and EUR/USD."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.controls import Controls
from pipeline.schema import Anomaly, SlackRef, to_ms

ADMIN, OTHER = "U0ADMIN0001", "U0OTHER0001"
CHANNEL = "C0ALERTS01"
END = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
START = END - timedelta(hours=2)
STEP = timedelta(seconds=10)
DIPS = {30: 0.96, 80: 0.92}  # minute after START -> the low of a short dip (-4 % and -8 %)


def tsla_price(at: datetime) -> float:
    minute = (at - START).total_seconds() / 60
    for start, low in DIPS.items():
        if start <= minute < start + 2:
            return 100 * low
    return 100.0


def volm_volume(at: datetime) -> float:
    """VOLM trades 10 a tick, and 40 times that for two minutes after minute 90: one volume spike."""
    return 400.0 if 90 <= (at - START).total_seconds() / 60 < 92 else 10.0


def tick(symbol: str, at: datetime, price: float, offset: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "ts": to_ms(at),
        "price": price,
        "volume": 10.0,
        "late": False,
        "partition": 0,
        "offset": offset,
        "published": None,
    }


def anomaly(symbol: str, minute: int, low: float) -> Anomaly:
    at = START + timedelta(minutes=minute)
    change = round((low - 1) * 100, 4)
    return Anomaly(
        id=f"{symbol.lower()}-drop-{minute}",
        symbol=symbol,
        rule="drop",
        timestamp=at,
        price=100 * low,
        reference_price=100.0,
        reference_timestamp=at - STEP,
        change_pct=change,
        threshold_pct=3.0,
        window_seconds=300,
        peak_price=100 * low,
        peak_change_pct=change,
        peak_timestamp=at,
        detected_at=at,
        volume=10.0,
    )


def alert_ref(backend: Any, anomaly_id: str) -> SlackRef:
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id=anomaly_id)["_source"])
    assert stored.slack is not None
    return stored.slack


def audit(backend: Any) -> list[Any]:
    return Controls(backend.redis, backend.settings, backend.es, backend.indices).audit_log(limit=100)
