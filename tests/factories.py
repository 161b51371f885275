"""Contract objects for unit tests: one anomaly with realistic defaults, changed per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.schema import Anomaly

AT = datetime(2026, 11, 23, 14, 31, 5, tzinfo=UTC)


def tsla_crash(**changes: Any) -> Anomaly:
    """TSLA -5.7 % from 250.40 in 4 minutes, deepest -7.9 % 40 s later; `changes` override any field."""
    fields = dict(
        id="tsla-drop-1",
        symbol="TSLA",
        rule="drop",
        timestamp=AT,
        price=236.1,
        volume=1200,
        reference_price=250.4,
        reference_timestamp=AT - timedelta(minutes=4),
        change_pct=-5.71,
        threshold_pct=5,
        window_seconds=300,
        peak_price=230.6,
        peak_change_pct=-7.91,
        peak_timestamp=AT + timedelta(seconds=40),
        detected_at=AT,
    )
    return Anomaly(**{**fields, **changes})
