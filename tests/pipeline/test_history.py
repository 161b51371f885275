"""The read side against the real Elasticsearch, over a small history whose answers are known by construction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch

from pipeline import history, store
from pipeline.schema import Anomaly, StoredTick, to_ms
from pipeline.settings import Settings

T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)
TICKS = 720  # two hours of AAPL, one tick every 10 s


def aapl_price(i: int) -> float:
    """A saw-tooth: up 0.1 a tick for 60 ticks, then back down, with one spike at tick 500."""
    return 500.0 if i == 500 else 100.0 + (i % 60) * 0.1


def tick(symbol: str, at: datetime, price: float, volume: float | None) -> dict:
    return store.tick_action(
        INDICES,
        StoredTick(
            **{
                "symbol": symbol,
                "ts": to_ms(at),
                "price": price,
                "volume": volume,
                "published": None,
                "late": False,
                "partition": 0,
                "offset": 0,
            }
        ),
    )


def anomaly(symbol: str, minute: int, status: str = "open", muted: bool = False) -> Anomaly:
    at = T0 + timedelta(minutes=minute)
    return Anomaly(
        id=f"{symbol.lower()}-drop-{minute}",
        symbol=symbol,
        rule="drop",
        timestamp=at,
        price=90,
        reference_price=100,
        reference_timestamp=at - timedelta(minutes=2),
        change_pct=-10,
        threshold_pct=5,
        window_seconds=300,
        peak_price=90,
        peak_change_pct=-10,
        peak_timestamp=at,
        detected_at=at,
        muted=muted,
        status=status,
    )


INDICES = store.Indices(f"tw-hist{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def es(real_stack: Settings) -> Iterator[Elasticsearch]:
    client = store.connect(real_stack)
    store.ensure_templates(client, INDICES)
    actions = [tick("AAPL", T0 + i * STEP, aapl_price(i), 10.0) for i in range(TICKS)]
    actions += [tick("AAPL.X", T0, 1.0, None), tick("MSFT", T0 + timedelta(hours=25), 400.0, None)]
    bad_print = tick("AAPL", T0 + 100 * STEP + timedelta(seconds=5), 1.0, 10.0)  # flagged by detection
    bad_print["_source"].update(suspect=True, suspect_reason="isolated print")
    actions.append(bad_print)
    actions += [
        store.anomaly_action(INDICES, a)
        for a in (
            anomaly("AAPL", 10),
            anomaly("AAPL", 50, "acknowledged"),
            anomaly("AAPL", 90, "resolved"),
            anomaly("MSFT", 30, muted=True),
        )
    ]
    store.write(client, actions)
    client.indices.refresh(index=f"{INDICES.prefix}-*")
    yield client
    for name in client.indices.get(index=f"{INDICES.prefix}-*"):
        client.indices.delete(index=name)


def test_symbols_last_prices_and_suggestions(es: Elasticsearch):
    infos = history.known_symbols(es, INDICES)
    assert [(i.symbol, i.last_price) for i in infos] == [
        ("AAPL", aapl_price(TICKS - 1)),
        ("AAPL.X", 1.0),
        ("MSFT", 400.0),
    ]
    assert infos[0].last_timestamp == T0 + (TICKS - 1) * STEP
    assert history.closest_symbols(es, INDICES, "APPL")[0] == "AAPL"
    assert "MSFT" in history.closest_symbols(es, INDICES, "msf")
    with pytest.raises(history.UnknownSymbol, match="did you mean AAPL") as raised:
        history.require_symbol(es, INDICES, "AAPK")
    assert raised.value.suggestions[0] == "AAPL"


def test_window_summary_ends_at_the_last_tick_by_default(es: Elasticsearch):
    summary = history.window_summary(es, INDICES, "aapl", timedelta(minutes=10), points=10)
    last_i = TICKS - 1
    first_i = last_i - 60  # ten minutes of 10 s ticks, both ends included
    window = [aapl_price(i) for i in range(first_i, last_i + 1)]
    assert summary is not None
    assert (summary.first, summary.last, summary.high, summary.low) == (
        aapl_price(first_i),
        aapl_price(last_i),
        max(window),
        min(window),
    )
    assert summary.ticks == 61 and summary.volume == 610.0
    assert summary.change_pct == pytest.approx((aapl_price(last_i) / aapl_price(first_i) - 1) * 100, abs=1e-4)
    assert 10 <= len(summary.sparkline) <= 11 and summary.sparkline[-1] == aapl_price(last_i)


def test_suspect_ticks_are_never_a_price_high_or_low(es: Elasticsearch):
    around = T0 + 100 * STEP
    summary = history.window_summary(es, INDICES, "AAPL", timedelta(minutes=2), end=around + timedelta(minutes=1))
    assert summary.low > 1.0 and summary.ticks == 13
    assert all(bar.low > 1.0 for bar in history.ohlc(es, INDICES, "AAPL", T0, T0 + timedelta(hours=2), "1m"))
    rows = history.ticks_page(es, INDICES, "AAPL", around, around + timedelta(seconds=10)).items
    assert [row.price for row in rows] == [aapl_price(100), aapl_price(101)]


def test_window_summary_finds_the_spike_and_nothing_outside_data(es: Elasticsearch):
    spike_at = T0 + 500 * STEP
    summary = history.window_summary(es, INDICES, "AAPL", timedelta(minutes=5), end=spike_at + timedelta(minutes=1))
    assert summary.high == 500.0 and summary.high_at == spike_at
    assert history.window_summary(es, INDICES, "AAPL", timedelta(hours=1), end=T0 - timedelta(days=1)) is None
    assert history.window_summary(es, INDICES, "NOPE", timedelta(hours=1)) is None


def test_ohlc_bars_equal_the_ticks_they_cover(es: Elasticsearch):
    bars = history.ohlc(es, INDICES, "AAPL", T0, T0 + timedelta(hours=2), "5m")
    assert len(bars) == 24
    for n, bar in enumerate(bars):
        prices = [aapl_price(i) for i in range(n * 30, n * 30 + 30)]
        assert bar.start == T0 + n * timedelta(minutes=5)
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ticks) == (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
            300.0,
            30,
        )
    with pytest.raises(ValueError, match="interval must be one of"):
        history.ohlc(es, INDICES, "AAPL", T0, T0 + timedelta(hours=1), "7m")
    with pytest.raises(ValueError, match="at most"):
        history.ohlc(es, INDICES, "AAPL", T0, T0 + timedelta(days=30), "1m")


def test_ticks_pages_cover_the_range_once(es: Elasticsearch):
    start, end = T0 + 100 * STEP, T0 + 349 * STEP
    seen, cursor = [], None
    while True:
        page = history.ticks_page(es, INDICES, "AAPL", start, end, limit=100, cursor=cursor)
        seen += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [row.timestamp for row in seen] == [T0 + i * STEP for i in range(100, 350)]
    with pytest.raises(ValueError, match="cursor"):
        history.ticks_page(es, INDICES, "AAPL", start, end, cursor="not-a-cursor")


def test_anomalies_filters_pages_and_lookups(es: Elasticsearch):
    page = history.anomalies_page(es, INDICES, symbol="AAPL", limit=2)
    assert [a.id for a in page.items] == ["aapl-drop-90", "aapl-drop-50"]
    rest = history.anomalies_page(es, INDICES, symbol="AAPL", limit=2, cursor=page.next_cursor)
    assert [a.id for a in rest.items] == ["aapl-drop-10"] and rest.next_cursor is None
    assert [a.id for a in history.anomalies_page(es, INDICES, status="acknowledged").items] == ["aapl-drop-50"]
    assert [a.id for a in history.anomalies_page(es, INDICES, muted=True).items] == ["msft-drop-30"]
    assert [
        a.id
        for a in history.anomalies_page(
            es, INDICES, start=T0 + timedelta(minutes=40), end=T0 + timedelta(minutes=60)
        ).items
    ] == ["aapl-drop-50"]
    assert history.get_anomaly(es, INDICES, "aapl-drop-50").status == "acknowledged"
    assert history.get_anomaly(es, INDICES, "missing") is None
    assert history.count_anomalies(es, INDICES, "AAPL", T0 + timedelta(minutes=20)) == 2


def test_usual_volume_is_the_mean_per_window(es: Elasticsearch):
    # 30 ticks of volume 10 in every 5-minute window of the two hours
    assert history.usual_volume(es, INDICES, "AAPL", 300, before=T0 + timedelta(hours=2)) == 300.0
    assert history.usual_volume(es, INDICES, "AAPL.X", 300, before=T0 + timedelta(hours=2)) is None


def test_before_the_first_tick_index_every_read_answers_empty(real_stack: Settings):
    client, empty = store.connect(real_stack), store.Indices(f"tw-none{uuid.uuid4().hex[:8]}")
    assert history.known_symbols(client, empty) == []
    assert history.last_tick(client, empty, "AAPL") is None
    assert history.window_summary(client, empty, "AAPL", timedelta(hours=1), end=T0) is None
    assert history.ohlc(client, empty, "AAPL", T0, T0 + timedelta(hours=1), "1m") == []
    assert history.ticks_page(client, empty, "AAPL", T0, T0 + timedelta(hours=1)).items == []
    assert history.usual_volume(client, empty, "AAPL", 300, before=T0) is None
