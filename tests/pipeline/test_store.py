"""Elasticsearch storage against the real server: templates, idempotent bulk writes, retention."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from elasticsearch.helpers import BulkIndexError

from pipeline import store
from pipeline.schema import StoredTick
from pipeline.settings import Settings


@pytest.fixture
def indices(real_stack: Settings):
    es = store.connect(real_stack)
    names = store.Indices(f"tw-store-{uuid.uuid4().hex[:6]}")
    store.ensure_templates(es, names)
    yield es, names
    for index in es.indices.get(index=f"{names.prefix}-*"):
        es.indices.delete(index=index)


def tick(symbol: str, ts: int, price: float) -> dict:
    return {
        "symbol": symbol,
        "ts": ts,
        "price": price,
        "volume": None,
        "published": None,
        "late": False,
        "partition": 0,
        "offset": 1,
    }


def test_ticks_land_in_daily_indices_behind_the_alias_and_replays_leave_them_as_stored(indices):
    es, names = indices
    day1, day2 = 1_800_000_000_000, 1_800_000_000_000 + 86_400_000
    actions = [
        store.tick_action(names, StoredTick(**tick("TSLA", day1, 250.0))),
        store.tick_action(names, StoredTick(**tick("TSLA", day2, 251))),
    ]
    assert store.write(es, actions) == 2
    store.write(es, [store.suspect_action(names, "TSLA", day1, "isolated print")])  # a later batch's judgment
    replayed = [store.tick_action(names, StoredTick(**tick("TSLA", day1, 999.0))), *actions]
    assert store.write(es, replayed) == 0  # the same ids again: nothing written, and no error
    es.indices.refresh(index=names.ticks)
    assert es.count(index=names.ticks)["count"] == 2
    first = es.get(index=names.tick_index(day1), id=f"TSLA@{day1}")["_source"]
    assert (first["price"], first["suspect"], first["suspect_reason"]) == (250.0, True, "isolated print")
    assert sorted(es.indices.get_alias(name=names.ticks)) == [f"{names.ticks}-2027.01.15", f"{names.ticks}-2027.01.16"]
    mapping = es.indices.get_mapping(index=f"{names.ticks}-2027.01.15")
    assert mapping[f"{names.ticks}-2027.01.15"]["mappings"]["properties"]["symbol"] == {"type": "keyword"}


def test_a_suspect_flag_for_a_tick_not_stored_yet_raises_so_it_is_retried(indices):
    es, names = indices
    with pytest.raises(BulkIndexError, match="1 document"):
        store.write(es, [store.suspect_action(names, "TSLA", 1_800_000_000_000, "isolated print")])
    es.indices.refresh(index=names.ticks)
    assert es.count(index=names.ticks)["count"] == 0  # it created no document of its own


def test_a_rejected_document_raises_so_the_batch_is_retried(indices):
    es, names = indices
    bad = store.tick_action(names, StoredTick(**tick("TSLA", 1_800_000_000_000, 1.0)))
    bad["_source"]["unexpected"] = "strict mappings refuse this"
    with pytest.raises(BulkIndexError, match="1 document") as caught:
        store.write(es, [bad])
    assert caught.value.errors[0]["create"]["error"]["type"] == "strict_dynamic_mapping_exception"


def test_retention_deletes_only_whole_days_older_than_the_limit(indices):
    es, names = indices
    for day in ("2026.11.01", "2026.11.20", "2026.11.23"):
        es.indices.create(index=f"{names.ticks}-{day}")
    dropped = store.drop_expired_ticks(es, names, keep_days=7, today=date(2026, 11, 23))
    assert dropped == [f"{names.ticks}-2026.11.01"]
    kept = sorted(es.indices.get(index=f"{names.ticks}-*"))
    assert kept == [f"{names.ticks}-2026.11.20", f"{names.ticks}-2026.11.23"]


def test_expired_index_names_ignore_foreign_indices():
    names = store.Indices("tw")
    found = store.expired_tick_indices(
        ["tw-ticks-2026.01.01", "tw-ticks-backup", "tw-ticks-2026.12.31"], names, keep_days=30, today=date(2026, 11, 23)
    )
    assert list(found) == ["tw-ticks-2026.01.01"]
