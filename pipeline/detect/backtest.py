"""What a candidate rule would have done: stored history replayed through the pure detection.

The bot's `/threshold … --preview` and the "Adjust threshold" modal ask this before a rule is saved. The
replay reads a bounded span (default the last 7 days up to the symbol's last tick) and feeds it to
`pipeline.detection.advance` exactly as the workers do, so "would have raised N alerts" counts episodes
by the same definition as live alerts.

Bounded cost: up to `max_ticks` stored ticks are replayed as they are (read with `search_after`, oldest
first, price and volume). Beyond that the span is replayed from 1-minute bars instead, two points per
minute, each with half the minute's volume: for `drop` the minute's high then its low, otherwise the low
then the high. That is an approximation — a move that happens inside one minute counts even if the low
came first — so it can over-count a little, never miss a move that the ticks show; `Replay.from_bars` says
when it was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import islice
from typing import Any, Unpack

from elasticsearch import Elasticsearch
from jinja2 import Environment

from pipeline import history
from pipeline.calendars import for_patterns, sessions_of
from pipeline.controls import Controls, controls_for
from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.market import Market, Track, benchmark_for
from pipeline.detect.rules import Sessions
from pipeline.rule_words import RuleChange, describe_rule
from pipeline.schema import RuleName, normalise_symbol, to_ms
from pipeline.store import Indices
from pipeline.templating import environment, macro

MAX_TICKS = 200_000
PAGE_SIZE = 10_000
BAR_SECONDS = 60
_BATCH = 5_000
_FOREVER = 10**13  # a replayed benchmark track keeps the whole span
_REPLAYED_AT = datetime(2000, 1, 1, tzinfo=UTC)  # detection stamps detected_at with it; nothing reads it here


@dataclass(frozen=True)
class Replay:
    """How many alerts (episodes) `rule` would have raised for `symbol` in [start, end]."""

    symbol: str
    rule: Rule
    start: datetime
    end: datetime
    alerts: int
    points: int  # ticks (or bar points) replayed
    from_bars: bool  # True: replayed from 1-minute bars (see the module docstring)


def replay(
    es: Elasticsearch,
    indices: Indices,
    symbol: str,
    rule: Rule,
    *,
    days: int = 7,
    end: datetime | None = None,
    max_ticks: int = MAX_TICKS,
    baseline_seconds: int = 3600,
    sessions: Sessions | None = None,
    benchmark: str | None = None,
) -> Replay:
    """Replay the `days` before `end` (default: the symbol's last tick); no stored ticks gives 0 alerts.

    `baseline_seconds`: the workers' (settings.baseline_seconds), so zscore and volume count as live; `sessions`: the
    symbol's exchange's, as the workers pass them (gaps, windows within a session); `benchmark`: the symbol's, whose
    stored ticks over the same span are its market (the relative rule, and β)."""
    symbol = normalise_symbol(symbol)
    if end is None:
        last = history.last_tick(es, indices, symbol)
        end = last.timestamp if last else datetime.now(UTC)
    start = end - timedelta(days=days)
    points, from_bars = _points(es, indices, _span_query(symbol, start, end), rule, max_ticks)
    market = None
    if benchmark is not None:
        track = Track()
        track.add(
            ((p.ts, p.price) for p in _points(es, indices, _span_query(benchmark, start, end), rule, max_ticks)[0]),
            _FOREVER,
        )
        market = Market(benchmark, track)
    alerts, replayed = count_alerts(
        symbol, rule, points, baseline_seconds=baseline_seconds, sessions=sessions, market=market
    )
    return Replay(symbol, rule, start, end, alerts, replayed, from_bars)


def count_alerts(
    symbol: str,
    rule: Rule,
    points: Iterable[TickPoint],
    *,
    baseline_seconds: int = 3600,
    sessions: Sessions | None = None,
    market: Market | None = None,
) -> tuple[int, int]:
    """(episodes opened, points replayed) for points in event-time order: the pure part of `replay`."""
    state = SymbolState()
    alerts = replayed = 0
    stream = iter(points)
    while chunk := list(islice(stream, _BATCH)):
        outcome = advance(
            state,
            symbol,
            chunk,
            [rule],
            lateness_ms=0,
            now=_REPLAYED_AT,
            baseline_seconds=baseline_seconds,
            sessions=sessions,
            market=market,
        )
        alerts += len(outcome.new_ids)
        replayed += len(chunk)
    return alerts, replayed


def _points(
    es: Elasticsearch, indices: Indices, query: dict[str, Any], rule: Rule, max_ticks: int
) -> tuple[Iterator[TickPoint], bool]:
    """The span's stored ticks, or its 1-minute bar points beyond `max_ticks` (True: from bars)."""
    stored = es.count(index=indices.ticks, query=query, ignore_unavailable=True, allow_no_indices=True)["count"]
    if stored > max_ticks:
        return _bar_points(es, indices, query, rule), True
    return _tick_points(es, indices, query), False


def _span_query(symbol: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The symbol's ticks in the span that detection evaluated: suspect ones (bad prints, skewed clocks) never
    raised an alert, so they raise none here either."""
    return {
        "bool": {
            "filter": [
                {"term": {"symbol": symbol}},
                {"range": {"timestamp": {"gte": to_ms(start), "lte": to_ms(end), "format": "epoch_millis"}}},
            ],
            "must_not": [{"term": {"suspect": True}}],
        }
    }


def _tick_points(es: Elasticsearch, indices: Indices, query: dict[str, Any]) -> Iterator[TickPoint]:
    """Stored ticks oldest first, a page at a time (`search_after` on the event time)."""
    after: list[Any] | None = None
    while True:
        hits = es.search(
            index=indices.ticks,
            query=query,
            size=PAGE_SIZE,
            sort=[{"timestamp": "asc"}],
            search_after=after,
            source=False,
            docvalue_fields=[{"field": "price"}, {"field": "volume"}],
            track_total_hits=False,
            ignore_unavailable=True,
            allow_no_indices=True,
        )["hits"]["hits"]
        for hit in hits:
            volume = hit["fields"].get("volume")  # absent when the tick carried none
            yield TickPoint(hit["sort"][0], hit["fields"]["price"][0], volume[0] if volume else None)
        if len(hits) < PAGE_SIZE:
            return
        after = hits[-1]["sort"]


def _bar_points(es: Elasticsearch, indices: Indices, query: dict[str, Any], rule: Rule) -> Iterator[TickPoint]:
    """Two points per minute from a date histogram, ordered so the rule's move inside a minute counts, the
    minute's volume split between them (none when its ticks carried none)."""
    buckets = es.search(
        index=indices.ticks,
        query=query,
        size=0,
        track_total_hits=False,
        aggs={
            "bars": {
                "date_histogram": {"field": "timestamp", "fixed_interval": f"{BAR_SECONDS}s", "min_doc_count": 1},
                "aggs": {
                    "high": {"max": {"field": "price"}},
                    "low": {"min": {"field": "price"}},
                    "volume": {"sum": {"field": "volume"}},
                    "volume_count": {"value_count": {"field": "volume"}},
                },
            }
        },
        ignore_unavailable=True,
        allow_no_indices=True,
    )["aggregations"]["bars"]["buckets"]
    half = BAR_SECONDS * 500
    for bucket in buckets:
        high, low = bucket["high"]["value"], bucket["low"]["value"]
        first, second = (high, low) if rule.name == "drop" else (low, high)
        volume = bucket["volume"]["value"] / 2 if bucket["volume_count"]["value"] else None
        yield TickPoint(bucket["key"], first, volume)
        yield TickPoint(bucket["key"] + half, second, volume)


@dataclass(frozen=True)
class Preview:
    """A rule change tried on the last PREVIEW_DAYS of a symbol's ticks, beside the rule as it is now."""

    candidate: Replay
    current: Replay


PREVIEW_DAYS = 7


def preview(
    es: Elasticsearch, indices: Indices, controls: Controls, symbol: str, rule: RuleName, **change: Unpack[RuleChange]
) -> Preview:
    """The rule with `change` (what `Controls.set_rule` takes) and the current one, replayed over the same
    PREVIEW_DAYS up to the symbol's last tick; nothing is saved. Shared by the bot, the API and the CLI."""
    current = controls.rules(symbol)[rule]
    candidate = controls.candidate(symbol, rule, **change).as_rule()
    last = history.last_tick(es, indices, symbol)
    end = last.timestamp if last else None

    settings = controls.settings
    sessions = sessions_of(settings.calendars, symbol)
    groups = controls_for(controls.redis, settings, [symbol])[symbol].groups
    benchmark = benchmark_for(settings.benchmarks, symbol, groups, for_patterns(settings.calendars).code_for(symbol))

    def replayed(tried: Rule) -> Replay:
        baseline = controls.settings.baseline_seconds
        return replay(
            es,
            indices,
            symbol,
            tried,
            days=PREVIEW_DAYS,
            end=end,
            baseline_seconds=baseline,
            sessions=sessions,
            benchmark=benchmark,
        )

    return Preview(replayed(candidate), replayed(current.as_rule()))


def preview_text(tried: Preview) -> str:
    """The preview in words (templates/preview.j2): the bot answers with it, the CLI prints it."""
    module = _words().get_template("preview.j2").module
    return macro(module, "preview", tried.candidate, tried.current).strip()


@cache
def _words() -> Environment:
    return environment(
        {
            "rule_text": lambda rule: describe_rule(rule.name, rule.threshold_pct, rule.window_seconds),
            "stamp": lambda value: f"{value:%Y-%m-%d %H:%M} UTC",
        }
    )
