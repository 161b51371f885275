"""GET /v1/thresholds/{symbol}/suggestion over a seeded history whose right answer is known."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from pipeline import store
from pipeline.schema import AckReason, Anomaly
from pipeline.settings import Settings
from tests.api.conftest import READER, bearer, problem


def _labelled(symbol: str, change: float, reason: AckReason, hours_ago: float) -> Anomaly:
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    return Anomaly(
        id=f"{symbol.lower()}-tune-{uuid.uuid4().hex[:6]}",
        symbol=symbol,
        rule="drop",
        timestamp=at,
        price=100 + change,
        reference_price=100.0,
        reference_timestamp=at - timedelta(minutes=2),
        change_pct=change,
        threshold_pct=3.0,
        window_seconds=300,
        peak_price=100 + change,
        peak_change_pct=change,
        peak_timestamp=at,
        detected_at=at,
        status="acknowledged",
        acknowledged_by="U0ALICE01",
        ack_reason=reason,
    )


def test_the_suggestion_keeps_real_moves_and_drops_the_noise(client: TestClient, settings: Settings):
    es, indices = store.connect(settings), store.Indices(settings.index_prefix)
    history = [
        _labelled("AAPL", -3.2, AckReason.TOO_SENSITIVE, 30),
        _labelled("AAPL", -3.6, AckReason.BAD_DATA, 50),
        _labelled("AAPL", -6.4, AckReason.REAL, 70),
        _labelled("AAPL", -8.1, AckReason.EXPECTED, 90),
        _labelled("AAPL", -2.0, AckReason.TOO_SENSITIVE, 24 * 40),  # older than 30 days: not counted
    ]
    store.write(es, [store.anomaly_action(indices, a) for a in history])
    es.indices.refresh(index=indices.anomalies)
    try:
        got = client.get("/v1/thresholds/AAPL/suggestion", headers=bearer(READER))
        assert got.status_code == 200, got.text
        (drop,) = got.json()["items"]
        assert (drop["rule"], drop["current"], drop["suggested"]) == ("drop", 5.0, 6.4)
        assert (drop["deserved"], drop["undeserved"]) == (2, 2)
        assert isinstance(drop["alerts_suggested"], int) and isinstance(drop["alerts_current"], int)
        assert drop["alerts_suggested"] <= drop["alerts_current"]
        assert client.get("/v1/thresholds/MSFT/suggestion", headers=bearer(READER)).json()["items"] == []
        assert problem(client.get("/v1/thresholds/NOPE/suggestion", headers=bearer(READER)), 404)
    finally:
        for anomaly in history:
            es.delete(index=indices.anomalies, id=anomaly.id, refresh=True)
