"""The daily digest as data: one calendar day of the market from Elasticsearch and the DLQ topic.

The day is a calendar day in `TICKWATCH_DIGEST_TZ`, never a scheduler's data interval (a cron schedule gives
an interval whose start equals its end). Every query is bounded by the day and by a size: one composite pass
over the day's ticks gives each symbol's open/close (top_hits size 1 by timestamp), low/high, late ticks and
the time slots it traded in (for silence); small queries add anomaly counts, mute changes and the top
movers' paths; dead letters are counted from the DLQ topic's offsets at the day's bounds (Kafka's
`offsets_for_times`), which is exact and reads no record.

`pipeline.digest_message` renders a `Digest` (Block Kit, plain text, the chart, the `digest.daily` event);
`pipeline.digest_posting` posts it once per (day, channel). `tickwatch digest` and the Airflow DAG share all three.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from elasticsearch import Elasticsearch
from pydantic import BaseModel, computed_field

from pipeline import store
from pipeline.calendars import MarketDay, exchanges, market_day
from pipeline.digest.dead_letters import dead_letters
from pipeline.digest.noise import NoisyRule, noisiest_rules
from pipeline.groups import Group, contains
from pipeline.schema import from_ms, iso
from pipeline.settings import Settings

MAX_SYMBOLS = 20_000  # composite paging stops here: a digest of more symbols than this is cut, and says so
MAX_BUCKETS = 60_000  # under Elasticsearch's search.max_buckets (65,536) per page
ANOMALY_ROWS = 100  # (symbol, rule) rows kept in the summary (XCom, the event); the totals count them all
SILENT_LINES = 10
CHART_POINTS = 150


# --- the day ---------------------------------------------------------------------------------------------------


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in `tz`, in UTC. 23 or 25 hours long on DST changes."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_complete_day(tz: str, now: datetime | None = None) -> date:
    """Yesterday in `tz`: the newest day that has ended."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


# --- the summary as data (JSON for XCom and the `digest.daily` event) ---------------------------------------


class SymbolDay(BaseModel):
    symbol: str
    open: float
    close: float
    low: float
    high: float
    first_at: datetime
    last_at: datetime
    ticks: int
    late: int
    change_pct: float  # open -> close
    drawdown_pct: float  # open -> the day's low (<= 0)
    rise_pct: float  # open -> the day's high (>= 0)


class RuleCount(BaseModel):
    """Anomalies of one symbol and rule in the day, by human state."""

    symbol: str
    rule: str
    total: int
    acknowledged: int
    open: int
    resolved: int
    muted: int


class MuteEntry(BaseModel):
    symbol: str
    action: Literal["mute", "unmute"]
    by: str
    at: datetime
    until: datetime | None = None
    reason: str = ""
    says: str = ""  # how it ends, as people say it (until above 250, until resolved …)


class GroupDay(BaseModel):
    """A symbol group's day (pipeline.groups): how its members traded together."""

    name: str
    symbols: int  # members that traded
    change_pct: float  # their average move, open -> close
    worst: str
    worst_pct: float
    best: str
    best_pct: float
    anomalies: int


class Silence(BaseModel):
    """A symbol with at least one whole slot without ticks while the market traded."""

    symbol: str
    last_at: datetime
    silent_minutes: int  # longest run of empty slots (a lower bound of the gap)
    stopped_early: bool  # its last tick came a slot or more before the market's last


class Health(BaseModel):
    late_ticks: int
    late_by_symbol: list[tuple[str, int]]
    suspect_ticks: int  # bad prints and skewed clocks, left out of every figure above (see pipeline.rules)
    suspect_by_symbol: list[tuple[str, int]]
    dead_letters: int | None  # None: Kafka could not be asked
    silent: list[Silence]
    silent_total: int
    silence_minutes: int


class Digest(BaseModel):
    day: date
    tz: str
    start: datetime
    end: datetime
    generated_at: datetime
    symbols: int
    ticks: int
    truncated: bool  # more than MAX_SYMBOLS symbols traded
    movers: list[SymbolDay]
    drawdowns: list[SymbolDay]
    rises: list[SymbolDay]
    anomalies: list[RuleCount]  # the most first, at most ANOMALY_ROWS
    anomaly_pairs: int  # (symbol, rule) pairs with anomalies, all of them
    anomalies_total: int
    acknowledged_total: int
    mute_changes: list[MuteEntry]
    muted_at_end: list[MuteEntry]
    health: Health
    markets: list[MarketDay] = []  # what the day was for each exchange (a holiday, an early close, a weekend)
    groups: list[GroupDay] = []  # the day split by symbol group, when groups are defined
    noisiest: list[NoisyRule] = []  # Fridays: the week's five noisiest rules
    paths: dict[str, list[tuple[datetime, float]]]  # top movers, price normalised to 100 at the open
    timings_ms: dict[str, float]  # where the time went, per query

    @property
    def reviews_mutes(self) -> bool:
        """Friday's digest lists every mute in force with its age, before a weekend in which forgotten ones
        would silence Monday's open."""
        return self.day.weekday() == 4

    @property
    def event_id(self) -> str:
        return f"msg_digest_{self.day.isoformat()}"

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way; mypy dislikes decorated properties
    @property
    def complete(self) -> bool:
        """False for a day not over when the digest was made: its figures stop at `generated_at`."""
        return self.generated_at >= self.end


# --- building it --------------------------------------------------------------------------------------------


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round((time.perf_counter() - began) * 1000, 1)


def build(
    es: Elasticsearch,
    indices: store.Indices,
    settings: Settings,
    day: date,
    *,
    now: datetime | None = None,
    groups: Mapping[str, Group] | None = None,
) -> Digest:
    """The digest of `day` (a calendar day in settings.digest_tz), from Elasticsearch and the DLQ topic; split
    by `groups` (pipeline.groups) too when given."""
    start, end = day_bounds(day, settings.digest_tz)
    slot = timedelta(minutes=settings.digest_silence_minutes)
    top = settings.digest_top
    timer = _Timer()
    with timer("symbols"):
        days, slots, truncated = _symbol_days(es, indices, start, end, slot)
    with timer("anomalies"):
        anomalies = _anomaly_counts(es, indices, start, end)
    with timer("mutes"):
        changes, muted_at_end = _mutes(es, indices, start, end)
    with timer("dead_letters"):
        dead = dead_letters(settings, start, end)
    with timer("suspects"):
        suspects = _suspects(es, indices, start, end, top)
    movers = sorted(days, key=lambda d: (-abs(d.change_pct), d.symbol))[:top]
    with timer("paths"):
        paths = _paths(es, indices, movers, start, end)
    silent = silences(slots, slot)
    noisiest: list[NoisyRule] = []
    if day.weekday() == 4:
        with timer("noisiest"):
            noisiest = noisiest_rules(es, indices, end)
    with timer("calendars"):
        markets = [market_day(code, day) for code in exchanges(settings.calendars)]
    late = sorted(((d.symbol, d.late) for d in days if d.late), key=lambda item: (-item[1], item[0]))
    by_symbol = {d.symbol: d for d in days}
    return Digest(
        day=day,
        tz=settings.digest_tz,
        start=start,
        end=end,
        generated_at=now or datetime.now(UTC),
        symbols=len(days),
        ticks=sum(d.ticks for d in days),
        truncated=truncated,
        movers=movers,
        drawdowns=sorted((d for d in days if d.drawdown_pct < 0), key=lambda d: (d.drawdown_pct, d.symbol))[:top],
        rises=sorted((d for d in days if d.rise_pct > 0), key=lambda d: (-d.rise_pct, d.symbol))[:top],
        anomalies=anomalies[:ANOMALY_ROWS],
        anomaly_pairs=len(anomalies),
        anomalies_total=sum(c.total for c in anomalies),
        acknowledged_total=sum(c.acknowledged for c in anomalies),
        mute_changes=changes,
        muted_at_end=muted_at_end,
        markets=markets,
        groups=group_days(groups or {}, days, anomalies),
        noisiest=noisiest,
        health=Health(
            late_ticks=sum(n for _, n in late),
            late_by_symbol=late[:top],
            suspect_ticks=suspects[0],
            suspect_by_symbol=suspects[1],
            dead_letters=dead,
            silent=[
                Silence(symbol=s, last_at=by_symbol[s].last_at, silent_minutes=minutes, stopped_early=early)
                for s, minutes, early in silent[:SILENT_LINES]
            ],
            silent_total=len(silent),
            silence_minutes=settings.digest_silence_minutes,
        ),
        paths=paths,
        timings_ms=timer.ms,
    )


def group_days(groups: Mapping[str, Group], days: list[SymbolDay], anomalies: list[RuleCount]) -> list[GroupDay]:
    """Each group with a member that traded, by name: its members' average move, the worst and the best, and
    how many anomalies they had."""
    found = []
    for name in sorted(groups):
        members = [d for d in days if contains(groups[name].members, d.symbol)]
        if not members:
            continue
        names = {d.symbol for d in members}
        worst = min(members, key=lambda d: (d.change_pct, d.symbol))
        best = max(members, key=lambda d: (d.change_pct, d.symbol))
        found.append(
            GroupDay(
                name=name,
                symbols=len(members),
                change_pct=round(sum(d.change_pct for d in members) / len(members), 4),
                worst=worst.symbol,
                worst_pct=worst.change_pct,
                best=best.symbol,
                best_pct=best.change_pct,
                anomalies=sum(c.total for c in anomalies if c.symbol in names),
            )
        )
    return found


def _day_range(field: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"range": {field: {"gte": iso(start), "lt": iso(end)}}}


def _symbol_days(
    es: Elasticsearch, indices: store.Indices, start: datetime, end: datetime, slot: timedelta
) -> tuple[list[SymbolDay], dict[str, list[int]], bool]:
    """Every symbol's day in one composite pass: open/close, low/high, ticks, late ticks, traded slots."""
    slots_per_day = math.ceil((end - start) / slot) + 1
    page = max(1, min(1000, MAX_BUCKETS // (slots_per_day + 4)))
    aggs = {
        "low": {"min": {"field": "price"}},
        "high": {"max": {"field": "price"}},
        "open": {"top_hits": {"size": 1, "sort": [{"timestamp": "asc"}], "_source": ["price", "timestamp"]}},
        "close": {"top_hits": {"size": 1, "sort": [{"timestamp": "desc"}], "_source": ["price", "timestamp"]}},
        "late": {"filter": {"term": {"late": True}}},
        "slots": {
            "date_histogram": {
                "field": "timestamp",
                "fixed_interval": f"{int(slot.total_seconds())}s",
                "min_doc_count": 1,
            }
        },
    }
    days: list[SymbolDay] = []
    slots: dict[str, list[int]] = {}
    after: dict[str, Any] | None = None
    while True:
        composite: dict[str, Any] = {"size": page, "sources": [{"symbol": {"terms": {"field": "symbol"}}}]}
        if after:
            composite["after"] = after
        result = es.options(request_timeout=120).search(
            index=indices.ticks,
            size=0,
            query=_trusted_ticks(start, end),
            aggs={"symbols": {"composite": composite, "aggs": aggs}},
            ignore_unavailable=True,
            allow_no_indices=True,
        )
        body = result.get("aggregations", {}).get("symbols", {"buckets": []})
        for bucket in body["buckets"]:
            symbol = bucket["key"]["symbol"]
            days.append(_symbol_day(symbol, bucket))
            slots[symbol] = [b["key"] for b in bucket["slots"]["buckets"]]
        after = body.get("after_key")
        if not after or len(body["buckets"]) < page:  # a short page is the last: no empty round trip
            return days, slots, False
        if len(days) >= MAX_SYMBOLS:
            return days, slots, True


def _trusted_ticks(start: datetime, end: datetime) -> dict[str, Any]:
    """The day's ticks without the suspect ones: a bad print must not become the day's low."""
    return {"bool": {"filter": [_day_range("timestamp", start, end)], "must_not": [{"term": {"suspect": True}}]}}


def _suspects(
    es: Elasticsearch, indices: store.Indices, start: datetime, end: datetime, top: int
) -> tuple[int, list[tuple[str, int]]]:
    """How many of the day's ticks detection flagged as suspect, in all and for the symbols with most."""
    result = es.search(
        index=indices.ticks,
        size=0,
        track_total_hits=True,
        ignore_unavailable=True,
        allow_no_indices=True,
        query={"bool": {"filter": [_day_range("timestamp", start, end), {"term": {"suspect": True}}]}},
        aggs={"symbols": {"terms": {"field": "symbol", "size": top}}},
    )
    buckets = result.get("aggregations", {}).get("symbols", {"buckets": []})["buckets"]
    return result["hits"]["total"]["value"], [(b["key"], b["doc_count"]) for b in buckets]


def _symbol_day(symbol: str, bucket: dict[str, Any]) -> SymbolDay:
    first = bucket["open"]["hits"]["hits"][0]["_source"]
    last = bucket["close"]["hits"]["hits"][0]["_source"]
    opening, closing = first["price"], last["price"]
    low, high = bucket["low"]["value"], bucket["high"]["value"]
    return SymbolDay(
        symbol=symbol,
        open=opening,
        close=closing,
        low=low,
        high=high,
        first_at=first["timestamp"],
        last_at=last["timestamp"],
        ticks=bucket["doc_count"],
        late=bucket["late"]["doc_count"],
        change_pct=_pct(opening, closing),
        drawdown_pct=_pct(opening, low),
        rise_pct=_pct(opening, high),
    )


def _pct(base: float, value: float) -> float:
    return round((value - base) / base * 100, 4)


def silences(slots: dict[str, list[int]], slot: timedelta) -> list[tuple[str, int, bool]]:
    """(symbol, silent minutes, stopped early) for symbols with a whole empty slot inside the market's span
    (from the first slot any symbol traded in to the last), longest silence first. Pure."""
    width = int(slot.total_seconds() * 1000)
    traded = [keys for keys in slots.values() if keys]
    if not traded:
        return []
    market_first, market_last = min(keys[0] for keys in traded), max(keys[-1] for keys in traded)
    found = []
    for symbol, keys in slots.items():
        if not keys:
            continue
        edges = [market_first - width, *keys, market_last + width]
        empty = max((b - a) // width - 1 for a, b in pairwise(edges))
        if empty >= 1:
            found.append((symbol, empty * width // 60_000, keys[-1] < market_last))
    return sorted(found, key=lambda item: (-item[1], item[0]))


def _anomaly_counts(es: Elasticsearch, indices: store.Indices, start: datetime, end: datetime) -> list[RuleCount]:
    """Anomalies of the day (by event time) per symbol and rule, by status; most first."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    after: dict[str, Any] | None = None
    for _ in range(MAX_SYMBOLS // 1000):
        composite: dict[str, Any] = {
            "size": 1000,
            "sources": [
                {"symbol": {"terms": {"field": "symbol"}}},
                {"rule": {"terms": {"field": "rule"}}},
                {"status": {"terms": {"field": "status", "missing_bucket": True}}},
            ],
        }
        if after:
            composite["after"] = after
        result = es.search(
            index=indices.anomalies,
            size=0,
            query=_day_range("timestamp", start, end),
            aggs={
                "groups": {
                    "composite": composite,
                    "aggs": {
                        "muted": {"filter": {"term": {"muted": True}}},
                        # Someone acknowledged it, whatever its status now (it may have resolved since).
                        "acknowledged": {"filter": {"exists": {"field": "acknowledged_by"}}},
                    },
                }
            },
            ignore_unavailable=True,
        )
        body = result.get("aggregations", {}).get("groups", {"buckets": []})
        for bucket in body["buckets"]:
            key = bucket["key"]
            row = counts.setdefault(
                (key["symbol"], key["rule"]), {"total": 0, "open": 0, "resolved": 0, "acknowledged_by": 0, "muted": 0}
            )
            status = key["status"] or "open"  # documents from before human state existed
            row["total"] += bucket["doc_count"]
            if status in ("open", "resolved"):
                row[status] += bucket["doc_count"]
            row["acknowledged_by"] += bucket["acknowledged"]["doc_count"]
            row["muted"] += bucket["muted"]["doc_count"]
        after = body.get("after_key")
        if not after or len(body["buckets"]) < 1000:
            break
    rows = [
        RuleCount(
            symbol=symbol,
            rule=rule,
            total=c["total"],
            acknowledged=c["acknowledged_by"],
            open=c["open"],
            resolved=c["resolved"],
            muted=c["muted"],
        )
        for (symbol, rule), c in counts.items()
    ]
    return sorted(rows, key=lambda r: (-r.total, r.symbol, r.rule))


def _mutes(
    es: Elasticsearch, indices: store.Indices, start: datetime, end: datetime
) -> tuple[list[MuteEntry], list[MuteEntry]]:
    """Mute changes made during the day, and the mutes in force at its end, from the audit index."""
    actions = {"terms": {"action": ["mute", "unmute"]}}
    during = es.search(
        index=indices.audit,
        size=100,
        sort=[{"at": "asc"}],
        ignore_unavailable=True,
        query={"bool": {"filter": [actions, _day_range("at", start, end)]}},
    )["hits"]["hits"]
    latest = es.search(
        index=indices.audit,
        size=0,
        ignore_unavailable=True,
        query={"bool": {"filter": [actions, {"range": {"at": {"lt": iso(end)}}}]}},
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": 1000},
                "aggs": {"last": {"top_hits": {"size": 1, "sort": [{"at": "desc"}]}}},
            }
        },
    )
    buckets = latest.get("aggregations", {}).get("symbols", {"buckets": []})["buckets"]
    last = [_mute_entry(b["last"]["hits"]["hits"][0]["_source"]) for b in buckets]
    in_force = [m for m in last if m.action == "mute" and (m.until is None or m.until > end)]
    return [_mute_entry(hit["_source"]) for hit in during], sorted(in_force, key=lambda m: m.symbol)


def _mute_entry(doc: dict[str, Any]) -> MuteEntry:
    state = doc.get("new") or {}
    return MuteEntry(
        symbol=doc["symbol"],
        action=doc["action"],
        by=doc["actor"]["name"],
        at=doc["at"],
        until=state.get("until"),
        reason=state.get("reason") or "",
        says=state.get("says") or "",
    )


def _paths(
    es: Elasticsearch, indices: store.Indices, movers: list[SymbolDay], start: datetime, end: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    """The movers' mean price per interval, as 100 x price / open, bracketed by the open and the close."""
    if not movers:
        return {}
    interval = max(60, math.ceil((end - start).total_seconds() / CHART_POINTS / 60) * 60)
    query = _trusted_ticks(start, end)  # a bad print would draw a spike no one traded at
    query["bool"]["filter"].append({"terms": {"symbol": [m.symbol for m in movers]}})
    result = es.search(
        index=indices.ticks,
        size=0,
        ignore_unavailable=True,
        allow_no_indices=True,
        query=query,
        aggs={
            "symbols": {
                "terms": {"field": "symbol", "size": len(movers)},
                "aggs": {
                    "path": {
                        "date_histogram": {"field": "timestamp", "fixed_interval": f"{interval}s", "min_doc_count": 1},
                        "aggs": {"price": {"avg": {"field": "price"}}},
                    }
                },
            }
        },
    )
    buckets = {b["key"]: b["path"]["buckets"] for b in result["aggregations"]["symbols"]["buckets"]}
    paths = {}
    for mover in movers:
        scale = 100 / mover.open
        # Each interval's mean is drawn at the interval's middle, kept between the open and the close so the
        # line never runs back in time at either end.
        middle = [
            (
                min(max(from_ms(b["key"] + interval * 500), mover.first_at), mover.last_at),
                round(b["price"]["value"] * scale, 3),
            )
            for b in buckets.get(mover.symbol, [])
        ]
        paths[mover.symbol] = [(mover.first_at, 100.0), *middle, (mover.last_at, round(mover.close * scale, 3))]
    return paths
