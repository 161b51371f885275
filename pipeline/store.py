"""Elasticsearch storage: index templates, bulk writes with deterministic ids, and tick retention.

Ticks go to daily indices named by *event* date (`<prefix>-ticks-YYYY.MM.DD`) behind the alias
`<prefix>-ticks`, so a replayed tick lands on its own document again and retention is a cheap index
delete. Anomalies live in one index, `<prefix>-anomalies`, keyed by anomaly id; detection updates only its
own fields, so the human state people set (status, acknowledgement, Slack ref) is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from elasticsearch import Elasticsearch, helpers
from elasticsearch.serializer import OrjsonSerializer

from pipeline.schema import Anomaly, StoredTick, from_ms
from pipeline.settings import Settings

_TICK_PROPERTIES: dict[str, Any] = {
    "symbol": {"type": "keyword"},
    "timestamp": {"type": "date"},
    "price": {"type": "double"},
    "volume": {"type": "double"},
    "late": {"type": "boolean"},
    "suspect": {"type": "boolean"},  # quarantined timestamp or bad print (pipeline.rules); not evaluated
    "suspect_reason": {"type": "keyword", "ignore_above": 256},
    "published_at": {"type": "date"},
    "kafka": {"properties": {"partition": {"type": "integer"}, "offset": {"type": "long"}}},
}

_ANOMALY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "keyword"},
    "symbol": {"type": "keyword"},
    "rule": {"type": "keyword"},
    "timestamp": {"type": "date"},
    "price": {"type": "double"},
    "volume": {"type": "double"},
    "reference_price": {"type": "double"},
    "reference_timestamp": {"type": "date"},
    "change_pct": {"type": "double"},
    "threshold_pct": {"type": "double"},
    "window_seconds": {"type": "integer"},
    "peak_price": {"type": "double"},
    "peak_change_pct": {"type": "double"},
    "peak_timestamp": {"type": "date"},
    "started_at": {"type": "date"},
    "zscore": {"type": "double"},
    "volume_ratio": {"type": "double"},
    "published_at": {"type": "date"},
    "detected_at": {"type": "date"},
    "muted": {"type": "boolean"},
    "broke_through": {"type": "keyword", "index": False},
    "benchmark": {"type": "keyword"},
    "watcher": {"type": "keyword"},
    "market_change_pct": {"type": "double"},
    "own_change_pct": {"type": "double"},
    "beta": {"type": "double"},
    "status": {"type": "keyword"},
    "acknowledged_by": {"type": "keyword"},
    "acknowledged_at": {"type": "date"},
    "ack_reason": {"type": "keyword"},
    "resolved_at": {"type": "date"},
    "slack": {"properties": {"channel": {"type": "keyword"}, "ts": {"type": "keyword"}}},
}

# Every change to mutes and rules: who, when, old -> new, through which front-end (see pipeline.controls).
_AUDIT_PROPERTIES: dict[str, Any] = {
    "at": {"type": "date"},
    "action": {"type": "keyword"},
    "symbol": {"type": "keyword"},
    "actor": {"properties": {"name": {"type": "keyword"}, "id": {"type": "keyword"}, "via": {"type": "keyword"}}},
    "old": {"type": "object", "enabled": False},
    "new": {"type": "object", "enabled": False},
}


_DAY_MS = 86_400_000


class Indices:
    """Index and alias names derived from one prefix, so tests and benches can use their own."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.ticks = f"{prefix}-ticks"
        self.anomalies = f"{prefix}-anomalies"
        self.audit = f"{prefix}-audit"

    def tick_index(self, ts_ms: int) -> str:
        return self._day_index(ts_ms // _DAY_MS)

    @lru_cache(maxsize=64)  # noqa: B019 - a handful of Indices live for the whole process
    def _day_index(self, day: int) -> str:
        return f"{self.ticks}-{from_ms(day * _DAY_MS):%Y.%m.%d}"


def connect(settings: Settings) -> Elasticsearch:
    # orjson serialises bulk bodies about twice as fast as the standard library.
    return Elasticsearch(
        settings.es_url, request_timeout=30, retry_on_timeout=True, max_retries=3, serializer=OrjsonSerializer()
    )


def ensure_templates(es: Elasticsearch, indices: Indices) -> None:
    """Install the index templates and create the anomalies index; safe to repeat."""
    settings = {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}
    es.indices.put_index_template(
        name=indices.ticks,
        index_patterns=[f"{indices.ticks}-*"],
        template={
            "settings": settings,
            "aliases": {indices.ticks: {}},
            "mappings": {"dynamic": "strict", "properties": _TICK_PROPERTIES},
        },
        priority=100,
    )
    es.indices.put_index_template(
        name=indices.anomalies,
        index_patterns=[indices.anomalies],
        template={"settings": settings, "mappings": {"dynamic": "strict", "properties": _ANOMALY_PROPERTIES}},
        priority=100,
    )
    es.indices.put_index_template(
        name=indices.audit,
        index_patterns=[indices.audit],
        template={"settings": settings, "mappings": {"dynamic": "strict", "properties": _AUDIT_PROPERTIES}},
        priority=100,
    )
    for name, properties in ((indices.anomalies, _ANOMALY_PROPERTIES), (indices.audit, _AUDIT_PROPERTIES)):
        if es.indices.exists(index=name):
            es.indices.put_mapping(index=name, properties=properties)  # fields added since it was created
        else:
            es.indices.create(index=name)
    # Daily tick indices made before a field was added (a strict mapping would refuse documents with it).
    es.indices.put_mapping(index=f"{indices.ticks}-*", properties=_TICK_PROPERTIES, allow_no_indices=True)


def tick_action(indices: Indices, tick: StoredTick) -> dict[str, Any]:
    """One bulk action for a tick the storage task indexes (pipeline.worker.batches.store_ticks).

    Create-only: a stored tick is never overwritten (write() takes the 409 that answers a repeat as done), so
    a retried or replayed write cannot drop the `suspect` flag a later batch set on it, and the first of two
    ticks with the same symbol and event time stays, as in detection.
    """
    source: dict[str, Any] = {
        "symbol": tick.symbol,
        "timestamp": tick.ts,
        "price": tick.price,
        "late": tick.late,
        "kafka": {"partition": tick.partition, "offset": tick.offset},
    }
    if tick.volume is not None:
        source["volume"] = tick.volume
    if tick.published is not None:
        source["published_at"] = tick.published
    if tick.suspect_reason:
        source.update(suspect=True, suspect_reason=tick.suspect_reason)
    return {
        "_op_type": "create",
        "_index": indices.tick_index(tick.ts),
        "_id": f"{tick.symbol}@{tick.ts}",
        "_source": source,
    }


def suspect_action(indices: Indices, symbol: str, ts: int, reason: str) -> dict[str, Any]:
    """Flag a stored tick found to be a bad print by a later tick. A partial update: it fails (and its task is
    retried) while the tick's own document is not written yet, and never creates a document of its own."""
    return {
        "_op_type": "update",
        "_index": indices.tick_index(ts),
        "_id": f"{symbol}@{ts}",
        "doc": {"suspect": True, "suspect_reason": reason},
        "retry_on_conflict": UPDATE_RETRIES,
    }


# Set by people (the bot, the API) or by the Slack notifier; detection's writes never carry them.
HUMAN_FIELDS = frozenset({"status", "acknowledged_by", "acknowledged_at", "slack"})
# Retries of an update that raced another writer of the same document (ES re-reads and merges again).
UPDATE_RETRIES = 10


def anomaly_action(indices: Indices, anomaly: Anomaly) -> dict[str, Any]:
    """A partial update carrying only detection's fields, so an acknowledgement or a Slack ref set meanwhile
    survives; a resolution also sets `status: resolved` (over `acknowledged`). A new document is the whole
    anomaly (`upsert`). No scripts: the loopback Elasticsearch has no painless."""
    full = anomaly.model_dump(mode="json")
    doc = {key: value for key, value in full.items() if key not in HUMAN_FIELDS}
    if anomaly.resolved_at is None:
        del doc["resolved_at"]  # never un-resolve a stored resolution from a stale re-evaluation
    else:
        doc["status"] = "resolved"
    return {
        "_op_type": "update",
        "_index": indices.anomalies,
        "_id": anomaly.id,
        "doc": doc,
        "upsert": full,
        "retry_on_conflict": UPDATE_RETRIES,
    }


def write(es: Elasticsearch, actions: Iterable[dict[str, Any]]) -> int:
    """Bulk-write; raises if any document was rejected so the batch is retried, never half-lost.

    A 409 answering a create-only action means the document is already there (what was wanted); a 409 on an
    update (after its retries) is a lost write and raises like any other rejection.
    """
    done, errors = helpers.bulk(
        es,
        actions,
        chunk_size=5000,
        max_chunk_bytes=20 * 1024 * 1024,
        raise_on_error=False,
        raise_on_exception=True,
        # Per-item status and errors only: parsing the full response cost as much as
        # sending.
        filter_path="errors,items.*.status,items.*.error,items.*._id",
    )
    failed = [item for item in cast(list[dict[str, Any]], errors) if item.get("create", {}).get("status") != 409]
    if failed:
        raise helpers.BulkIndexError(f"{len(failed)} document(s) failed to index.", failed)
    return done


def expired_tick_indices(names: Iterable[str], indices: Indices, keep_days: int, today: date) -> Iterator[str]:
    """Daily tick indices whose whole day is older than `keep_days` (pure, so it is tested alone)."""
    cutoff = today - timedelta(days=keep_days)
    for name in names:
        try:
            day = datetime.strptime(name.removeprefix(f"{indices.ticks}-"), "%Y.%m.%d").date()
        except ValueError:
            continue  # not one of ours
        if day < cutoff:
            yield name


def drop_expired_ticks(es: Elasticsearch, indices: Indices, keep_days: int, today: date | None = None) -> list[str]:
    names = list(es.indices.get(index=f"{indices.ticks}-*", expand_wildcards="open,closed").keys())
    expired = sorted(expired_tick_indices(names, indices, keep_days, today or datetime.now(UTC).date()))
    for name in expired:
        es.indices.delete(index=name)
    return expired
