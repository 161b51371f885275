"""The read side over Elasticsearch, shared by the Slack bot, the API and the digest.

Ticks that detection flagged `suspect` (bad prints, skewed clocks; see pipeline.rules) are left out of every
read, as they were left out of detection.

Plain functions: the client and the index names come in, plain data goes out. Every query is bounded by a
time range and a size, so no answer can grow with the history. Times are aware UTC datetimes; ticks are
stored with event time in epoch milliseconds (see pipeline.store).
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from pipeline import cursors
from pipeline.schema import Anomaly, from_ms, normalise_symbol, to_ms
from pipeline.store import Indices

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86_400}
MAX_BUCKETS = 5000
MAX_PAGE = 1000
SYMBOLS_LIMIT = 10_000
NAMES_TTL_SECONDS = 30.0  # a symbol seen for the first time is suggested at most this much later


@dataclass(frozen=True)
class TickRow:
    symbol: str
    timestamp: datetime
    price: float
    volume: float | None


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str
    last_price: float
    last_timestamp: datetime


@dataclass(frozen=True)
class WindowSummary:
    """One symbol over one window: where it started and ended, its range and a sparkline of it."""

    symbol: str
    start: datetime
    end: datetime
    first: float
    last: float
    high: float
    high_at: datetime
    low: float
    low_at: datetime
    change_pct: float
    volume: float | None
    ticks: int
    sparkline: list[float]  # the last price in each of `points` equal slices (slices with no tick skipped)


@dataclass(frozen=True)
class Bar:
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float | None
    ticks: int


@dataclass(frozen=True)
class Page:
    """A page of results and the opaque cursor of the next one (None: this was the last)."""

    items: list[Any]
    next_cursor: str | None


class UnknownSymbol(LookupError):
    """No stored tick has this symbol; `suggestions` are the closest known ones."""

    def __init__(self, symbol: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"no ticks stored for {symbol}{hint}")
        self.symbol = symbol
        self.suggestions = suggestions


# --- symbols and prices ---------------------------------------------------------------------------


def known_symbols(es: Elasticsearch, indices: Indices, *, limit: int = 1000) -> list[SymbolInfo]:
    """Every symbol with ticks (up to `limit`), with its last price and time, sorted by symbol."""
    response = _search(
        es,
        indices.ticks,
        size=0,
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": min(limit, SYMBOLS_LIMIT), "order": {"_key": "asc"}},
                "aggs": {"last": _edge_hit(newest=True)},
            }
        },
    )
    return [_symbol_info(bucket) for bucket in _buckets(response, "symbols")]


def closest_symbols(es: Elasticsearch, indices: Indices, text: str, *, n: int = 3) -> list[str]:
    """The known symbols nearest to `text` (a typo, a prefix or a missing suffix such as BTC for BTC-USD)."""
    wanted = text.strip().upper()
    names = symbol_names(es, indices)
    starting = [name for name in names if name.startswith(wanted) and name != wanted]
    similar = difflib.get_close_matches(wanted, names, n=n, cutoff=0.5)
    return list(dict.fromkeys(similar + starting))[:n]


_names: dict[str, tuple[float, list[str]]] = {}  # ticks alias -> (when read, names)


def symbol_names(es: Elasticsearch, indices: Indices) -> list[str]:
    """Every symbol with ticks, by name only, read at most once per NAMES_TTL_SECONDS per process: a typo (or
    a flood of them) must not run an aggregation over all of history each time."""
    now = time.monotonic()
    cached = _names.get(indices.ticks)
    if cached is None or now - cached[0] > NAMES_TTL_SECONDS:
        response = _search(
            es, indices.ticks, size=0, aggs={"symbols": {"terms": {"field": "symbol", "size": SYMBOLS_LIMIT}}}
        )
        cached = _names[indices.ticks] = (now, sorted(bucket["key"] for bucket in _buckets(response, "symbols")))
    return cached[1]


def require_symbol(es: Elasticsearch, indices: Indices, symbol: str) -> TickRow:
    """The symbol's last tick; UnknownSymbol (with suggestions) when nothing is stored for it."""
    tick = last_tick(es, indices, symbol)
    if tick is None:
        raise UnknownSymbol(normalise_symbol(symbol), closest_symbols(es, indices, symbol))
    return tick


def last_tick(es: Elasticsearch, indices: Indices, symbol: str) -> TickRow | None:
    hits = _search(
        es,
        indices.ticks,
        size=1,
        query=_symbol_query(symbol),
        sort=[{"timestamp": "desc"}],
        source=["symbol", "timestamp", "price", "volume"],
    )["hits"]["hits"]
    return _tick_row(hits[0]["_source"]) if hits else None


def window_summary(
    es: Elasticsearch,
    indices: Indices,
    symbol: str,
    window: timedelta,
    *,
    end: datetime | None = None,
    points: int = 24,
) -> WindowSummary | None:
    """The window ending at `end` (default: the symbol's last tick, so replayed or old data still answers).

    One request: range stats, first/last/high/low ticks and the sparkline slices are aggregations.
    """
    if end is None:
        last = last_tick(es, indices, symbol)
        if last is None:
            return None
        end = last.timestamp
    start = end - window
    slice_ms = max(1, (to_ms(end) - to_ms(start)) // max(points, 1))
    response = _search(
        es,
        indices.ticks,
        size=0,
        query=_symbol_query(symbol, start, end),
        aggs={
            "price": {"stats": {"field": "price"}},
            "volume": {"sum": {"field": "volume"}},
            "volume_count": {"value_count": {"field": "volume"}},
            "first": _edge_hit(newest=False),
            "last": _edge_hit(newest=True),
            "high": _top_tick({"price": "desc"}, {"timestamp": "desc"}),
            "low": _top_tick({"price": "asc"}, {"timestamp": "desc"}),
            "slices": {
                "date_histogram": {
                    "field": "timestamp",
                    "fixed_interval": f"{slice_ms}ms",
                    "min_doc_count": 1,
                    "offset": f"{to_ms(start) % slice_ms}ms",
                },
                "aggs": {"last": _edge_hit(newest=True)},
            },
        },
    )
    aggs = response.get("aggregations")
    if not aggs or not aggs["price"]["count"]:
        return None
    count = aggs["price"]["count"]
    first, last = (_only(aggs[name])["price"] for name in ("first", "last"))
    high, low = _only(aggs["high"]), _only(aggs["low"])
    return WindowSummary(
        symbol=normalise_symbol(symbol),
        start=start,
        end=end,
        first=first,
        last=last,
        high=high["price"],
        high_at=from_ms(high["timestamp"]),
        low=low["price"],
        low_at=from_ms(low["timestamp"]),
        change_pct=round((last / first - 1) * 100, 4),
        volume=aggs["volume"]["value"] if aggs["volume_count"]["value"] else None,
        ticks=count,
        sparkline=[_only(bucket["last"])["price"] for bucket in aggs["slices"]["buckets"]],
    )


def ohlc(es: Elasticsearch, indices: Indices, symbol: str, start: datetime, end: datetime, interval: str) -> list[Bar]:
    """OHLCV bars of `interval` (one of INTERVALS) in [start, end), oldest first; empty buckets left out."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}; got {interval!r}")
    if end <= start:
        raise ValueError("the end must be after the start")
    buckets = (end - start).total_seconds() / INTERVALS[interval]
    if buckets > MAX_BUCKETS:
        raise ValueError(
            f"{interval} bars over that range would be {buckets:,.0f}; at most {MAX_BUCKETS:,} — "
            "choose a larger interval or a shorter range"
        )
    response = _search(
        es,
        indices.ticks,
        size=0,
        query=_symbol_query(symbol, start, end, end_inclusive=False),
        aggs={
            "bars": {
                "date_histogram": {
                    "field": "timestamp",
                    "fixed_interval": f"{INTERVALS[interval]}s",
                    "min_doc_count": 1,
                },
                "aggs": {
                    "open": _edge_hit(newest=False),
                    "close": _edge_hit(newest=True),
                    "high": {"max": {"field": "price"}},
                    "low": {"min": {"field": "price"}},
                    "volume": {"sum": {"field": "volume"}},
                    "volume_count": {"value_count": {"field": "volume"}},
                },
            },
        },
    )
    return [
        Bar(
            start=from_ms(bucket["key"]),
            open=_only(bucket["open"])["price"],
            high=bucket["high"]["value"],
            low=bucket["low"]["value"],
            close=_only(bucket["close"])["price"],
            volume=bucket["volume"]["value"] if bucket["volume_count"]["value"] else None,
            ticks=bucket["doc_count"],
        )
        for bucket in _buckets(response, "bars")
    ]


def ticks_page(
    es: Elasticsearch,
    indices: Indices,
    symbol: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    """Raw ticks in [start, end], oldest first, `limit` at a time."""
    _check_limit(limit)
    hits = _search(
        es,
        indices.ticks,
        size=limit + 1,
        query=_symbol_query(symbol, start, end),
        sort=[{"timestamp": "asc"}],
        search_after=cursors.decode(cursor),
        source=["symbol", "timestamp", "price", "volume"],
    )["hits"]["hits"]
    rows = [_tick_row(hit["_source"]) for hit in hits[:limit]]
    return Page(rows, cursors.encode(hits[limit - 1]["sort"]) if len(hits) > limit else None)


def usual_volume(
    es: Elasticsearch, indices: Indices, symbol: str, window_seconds: int, *, before: datetime, days: int = 7
) -> float | None:
    """The symbol's mean volume per `window_seconds` over the `days` before `before` (windows it traded in)."""
    start = before - timedelta(days=days)
    slices = (before - start).total_seconds() / window_seconds
    if slices > MAX_BUCKETS * 4:
        window_seconds = int((before - start).total_seconds() // (MAX_BUCKETS * 4)) + 1
    response = _search(
        es,
        indices.ticks,
        size=0,
        query=_symbol_query(symbol, start, before, end_inclusive=False, with_volume=True),
        aggs={
            "windows": {
                "date_histogram": {"field": "timestamp", "fixed_interval": f"{window_seconds}s", "min_doc_count": 1},
                "aggs": {"volume": {"sum": {"field": "volume"}}},
            }
        },
    )
    sums = [bucket["volume"]["value"] for bucket in _buckets(response, "windows")]
    return sum(sums) / len(sums) if sums else None


# --- anomalies ------------------------------------------------------------------------------------


def anomalies_page(
    es: Elasticsearch,
    indices: Indices,
    *,
    symbol: str | None = None,
    rule: str | None = None,
    status: str | None = None,
    muted: bool | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """Anomalies matching every filter given, newest (event time) first."""
    _check_limit(limit)
    filters: list[dict[str, Any]] = []
    if symbol:
        filters.append({"term": {"symbol": normalise_symbol(symbol)}})
    if rule:
        filters.append({"term": {"rule": rule}})
    if status:
        filters.append(
            {"term": {"status": status}}
            if status != "open"
            else {
                "bool": {
                    "should": [{"term": {"status": "open"}}, {"bool": {"must_not": {"exists": {"field": "status"}}}}]
                }
            }
        )
    if muted is not None:
        filters.append({"term": {"muted": muted}})
    if start or end:
        filters.append(
            {"range": {"timestamp": {key: value.isoformat() for key, value in (("gte", start), ("lte", end)) if value}}}
        )
    hits = _search(
        es,
        indices.anomalies,
        size=limit + 1,
        query={"bool": {"filter": filters}},
        sort=[{"timestamp": "desc"}, {"id": "desc"}],
        search_after=cursors.decode(cursor),
    )["hits"]["hits"]
    items = [Anomaly.model_validate(hit["_source"]) for hit in hits[:limit]]
    return Page(items, cursors.encode(hits[limit - 1]["sort"]) if len(hits) > limit else None)


def get_anomaly(es: Elasticsearch, indices: Indices, anomaly_id: str) -> Anomaly | None:
    try:
        return Anomaly.model_validate(es.get(index=indices.anomalies, id=anomaly_id)["_source"])
    except NotFoundError:
        return None


def count_anomalies(
    es: Elasticsearch, indices: Indices, symbol: str, since: datetime, *, until: datetime | None = None
) -> int:
    bounds = {"gte": since.isoformat(), **({"lte": until.isoformat()} if until else {})}
    return es.count(
        index=indices.anomalies,
        query={"bool": {"filter": [{"term": {"symbol": normalise_symbol(symbol)}}, {"range": {"timestamp": bounds}}]}},
    )["count"]


# --- helpers ----------------------------------------------------------------------------------------


def _search(es: Elasticsearch, index: str, **body: Any) -> dict[str, Any]:
    """A search that answers empty, not 404, before the first tick index exists."""
    return es.search(index=index, ignore_unavailable=True, allow_no_indices=True, track_total_hits=False, **body).body


def _buckets(response: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """An aggregation's buckets; none when no index matched (ES then answers without `aggregations`)."""
    return response.get("aggregations", {}).get(name, {}).get("buckets", [])


def _symbol_query(
    symbol: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    end_inclusive: bool = True,
    with_volume: bool = False,
) -> dict[str, Any]:
    filters: list[dict[str, Any]] = [{"term": {"symbol": normalise_symbol(symbol)}}]
    if start is not None or end is not None:
        bounds: dict[str, int] = {}
        if start is not None:
            bounds["gte"] = to_ms(start)
        if end is not None:
            bounds["lte" if end_inclusive else "lt"] = to_ms(end)
        filters.append({"range": {"timestamp": {**bounds, "format": "epoch_millis"}}})
    if with_volume:
        filters.append({"exists": {"field": "volume"}})
    # Ticks detection flagged suspect (bad prints, skewed clocks) never become a price, a high or a low here.
    return {"bool": {"filter": filters, "must_not": [{"term": {"suspect": True}}]}}


def _edge_hit(*, newest: bool) -> dict[str, Any]:
    """The first or last tick of a bucket, by event time."""
    return _top_tick({"timestamp": "desc" if newest else "asc"})


def _top_tick(*sort: dict[str, str]) -> dict[str, Any]:
    """The top tick by `sort`, read from doc values: loading stored `_source` for every bar's open and close
    was most of an OHLC query's time (p95 185 -> 120 ms for a 1-minute symbol-day over 10 M ticks)."""
    return {
        "top_hits": {
            "size": 1,
            "sort": list(sort),
            "_source": False,
            "stored_fields": ["_none_"],
            "docvalue_fields": ["price", {"field": "timestamp", "format": "epoch_millis"}],
        }
    }


def _only(top_hits: dict[str, Any]) -> dict[str, Any]:
    fields = top_hits["hits"]["hits"][0]["fields"]
    return {"timestamp": int(fields["timestamp"][0]), "price": fields["price"][0]}


def _symbol_info(bucket: dict[str, Any]) -> SymbolInfo:
    last = _only(bucket["last"])
    return SymbolInfo(bucket["key"], last["price"], from_ms(last["timestamp"]))


def _tick_row(source: dict[str, Any]) -> TickRow:
    return TickRow(source["symbol"], from_ms(source["timestamp"]), source["price"], source.get("volume"))


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
