"""The benches' seeded history, small: complete, reused when complete, reloaded when not, and its anomalies
consistent with its prices."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from elasticsearch import Elasticsearch

from pipeline import history, store
from pipeline.settings import Settings
from tickwatch.bench.seed import DAY, SeedSpec, discard, ensure_history, is_complete, marker_index

SPEC = SeedSpec(symbols=4, ticks_per_symbol=400, moves_per_symbol=2)


@pytest.fixture
def prefix(real_stack: Settings) -> Iterator[str]:
    name = f"tw-seed-{uuid.uuid4().hex[:8]}"
    yield name
    discard(store.connect(real_stack), store.Indices(name))


def _marker_at(es: Elasticsearch, indices: store.Indices) -> str:
    return es.get(index=marker_index(indices), id="marker")["_source"]["at"]


def test_a_seed_is_complete_and_reused(real_stack: Settings, prefix: str):
    es = store.connect(real_stack)
    indices = ensure_history(real_stack, SPEC, prefix=prefix)
    assert es.count(index=indices.ticks)["count"] == SPEC.ticks == 1600
    assert es.count(index=indices.anomalies)["count"] == SPEC.anomalies == 8
    assert [info.symbol for info in history.known_symbols(es, indices)] == ["AAPL", "MSFT", "NVDA", "TSLA"]
    made_at = _marker_at(es, indices)
    assert ensure_history(real_stack, SPEC, prefix=prefix).prefix == prefix
    assert _marker_at(es, indices) == made_at  # not loaded again

    other = SeedSpec(symbols=2, ticks_per_symbol=300, moves_per_symbol=1)
    assert not is_complete(es, indices, other)
    ensure_history(real_stack, other, prefix=prefix)  # other parameters: deleted and loaded again
    assert es.count(index=indices.ticks)["count"] == 600 and es.count(index=indices.anomalies)["count"] == 2


def test_an_interrupted_seed_is_loaded_again(real_stack: Settings, prefix: str):
    es = store.connect(real_stack)
    indices = ensure_history(real_stack, SPEC, prefix=prefix)
    es.delete(index=marker_index(indices), id="marker", refresh=True)  # as if the load had stopped before it
    assert not is_complete(es, indices, SPEC)
    ensure_history(real_stack, SPEC, prefix=prefix)
    assert is_complete(es, indices, SPEC) and es.count(index=indices.ticks)["count"] == SPEC.ticks


def test_seeded_anomalies_match_the_seeded_prices(real_stack: Settings, prefix: str):
    es = store.connect(real_stack)
    indices = ensure_history(real_stack, SPEC, prefix=prefix)
    anomalies = history.anomalies_page(es, indices, limit=100).items
    assert {a.status for a in anomalies} <= {"open", "acknowledged", "resolved"}
    for anomaly in anomalies:
        sign = -1 if anomaly.rule == "drop" else 1
        assert sign * anomaly.change_pct >= anomaly.threshold_pct
        assert sign * anomaly.peak_change_pct >= sign * anomaly.change_pct
        assert DAY <= anomaly.reference_timestamp < anomaly.timestamp < DAY + timedelta(days=1)
        # The crossing tick and the reference are real stored ticks with those prices.
        ticks = {
            row.timestamp: row.price
            for row in history.ticks_page(
                es, indices, anomaly.symbol, anomaly.reference_timestamp, anomaly.timestamp, limit=1000
            ).items
        }
        assert ticks[anomaly.reference_timestamp] == anomaly.reference_price
        assert ticks[anomaly.timestamp] == anomaly.price
        assert (anomaly.status == "acknowledged") == (anomaly.acknowledged_by is not None)
        assert anomaly.muted == (anomaly.slack is None)
