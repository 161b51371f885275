"""`tickwatch seed`: a big stored history (≥ 10 M ticks over ≥ 500 symbols, and its anomalies) for benches.

Written straight into Elasticsearch with `elasticsearch.helpers.parallel_bulk` (no Kafka, no workers: the
read side is what the benches measure), into its own index prefix (`tickwatch-seed`) so that it is made
once and reused by every later bench run. A marker document, written last, says the load finished and
with which parameters; without it (an interrupted load, other parameters) the seed indices are deleted
and loaded again. While loading, refresh is off and the index is force-merged afterwards (the history is
read-only from then on, and one segment is what a long-lived daily index converges to).

The market: one day of ticks every 4 s per symbol (20 000 per symbol-day), geometric Brownian motion per
symbol, with a few sharp drops and rallies per symbol injected into the prices; each becomes an anomaly
document as detection would have written it, with a realistic mix of human states (open, acknowledged,
resolved, muted, posted to Slack).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import numpy as np
from elasticsearch import Elasticsearch, helpers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline import store
from pipeline.detect.detection import anomaly_id
from pipeline.ingest.generator import default_symbols
from pipeline.schema import Anomaly, AnomalyStatus, SlackRef, from_ms, to_ms
from pipeline.settings import Settings

SEED_PREFIX = "tickwatch-seed"
DAY = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; the history is one UTC day
THRESHOLD_PCT = 5.0


@dataclass(frozen=True)
class SeedSpec:
    """What a seed holds; the marker stores it, so a seed made with other parameters is not reused."""

    symbols: int = 500
    ticks_per_symbol: int = 20_000
    interval_ms: int = 4_000
    moves_per_symbol: int = 4
    seed: int = 20260105

    @property
    def ticks(self) -> int:
        return self.symbols * self.ticks_per_symbol

    @property
    def anomalies(self) -> int:
        return self.symbols * self.moves_per_symbol


def marker_index(indices: store.Indices) -> str:
    return f"{indices.prefix}-seed"


def is_complete(es: Elasticsearch, indices: store.Indices, spec: SeedSpec) -> bool:
    """The marker is there, for these parameters, and the counts agree with it."""
    if not es.indices.exists(index=marker_index(indices)):
        return False
    marker = es.options(ignore_status=404).get(index=marker_index(indices), id="marker")
    if not marker.get("found") or marker["_source"].get("spec") != asdict(spec):
        return False
    ticks = es.count(index=indices.ticks, ignore_unavailable=True)["count"]
    anomalies = es.count(index=indices.anomalies, ignore_unavailable=True)["count"]
    return ticks == spec.ticks and anomalies == spec.anomalies


def ensure_history(
    settings: Settings, spec: SeedSpec | None = None, *, prefix: str = SEED_PREFIX, console: Console | None = None
) -> store.Indices:
    """The seeded history's indices, loading it first unless a complete one is already there."""
    spec = spec or SeedSpec()
    es = store.connect(settings).options(request_timeout=300)
    indices = store.Indices(prefix)
    if is_complete(es, indices, spec):
        return indices
    console = console or Console()
    discard(es, indices)
    started = time.perf_counter()
    _load(es, indices, spec, console)
    seconds = time.perf_counter() - started
    es.index(
        index=marker_index(indices),
        id="marker",
        refresh=True,
        document={"spec": asdict(spec), "seconds": round(seconds, 1), "at": datetime.now(UTC).isoformat()},
    )
    console.print(
        f"seeded {spec.ticks:,} ticks over {spec.symbols} symbols and {spec.anomalies:,} anomalies "
        f"into {prefix}-* in {seconds:.0f} s ({spec.ticks / seconds:,.0f} ticks/s)"
    )
    return indices


def discard(es: Elasticsearch, indices: store.Indices) -> None:
    """Delete the seed's indices (by name: Elasticsearch refuses wildcard deletes)."""
    for name in es.indices.get(index=f"{indices.prefix}-*", expand_wildcards="open,closed"):
        es.indices.delete(index=name)


def _load(es: Elasticsearch, indices: store.Indices, spec: SeedSpec, console: Console) -> None:
    store.ensure_templates(es, indices)
    tick_index = indices.tick_index(to_ms(DAY))
    # Loading settings: no refresh, no fsync per request; restored when the load is done.
    es.indices.create(index=tick_index, settings={"refresh_interval": "-1", "translog.durability": "async"})
    rng = np.random.default_rng(spec.seed)
    symbols = default_symbols(spec.symbols)
    anomalies: list[Anomaly] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(f"seeding {tick_index}", total=spec.ticks)

        def actions() -> Iterator[dict[str, Any]]:
            for symbol in symbols:
                prices, volumes, moves = _market(rng, spec)
                anomalies.extend(_anomaly(symbol, move, prices, spec, rng) for move in moves)
                times = to_ms(DAY) + np.arange(spec.ticks_per_symbol, dtype=np.int64) * spec.interval_ms
                for ts, price, volume in zip(times.tolist(), prices.tolist(), volumes.tolist(), strict=True):
                    yield {
                        "_index": tick_index,
                        "_source": {"symbol": symbol, "timestamp": ts, "price": price, "volume": volume},
                    }

        # Auto ids: append-only indexing skips the per-document id lookup (the seed is loaded whole or not at all).
        for ok, item in helpers.parallel_bulk(
            es,
            actions(),
            thread_count=2,
            chunk_size=5000,
            queue_size=4,
            max_chunk_bytes=20 * 1024 * 1024,
            raise_on_error=True,
            filter_path="errors,items.*.status,items.*.error",
        ):
            if not ok:
                raise RuntimeError(f"Elasticsearch refused a seed tick: {item}")
            progress.advance(task)
        progress.update(task, description="writing anomalies, refreshing and merging")
        store.write(es, [store.anomaly_action(indices, anomaly) for anomaly in anomalies])
        es.indices.put_settings(index=tick_index, settings={"refresh_interval": "1s", "translog.durability": "request"})
        es.indices.refresh(index=f"{tick_index},{indices.anomalies}")
        es.indices.forcemerge(index=tick_index, max_num_segments=1)


@dataclass(frozen=True)
class Move:
    rule: Literal["drop", "rise"]
    start: int  # tick index where the move begins (the window's extreme)
    length: int  # ticks until its peak
    pct: float


def _market(rng: np.random.Generator, spec: SeedSpec) -> tuple[np.ndarray, np.ndarray, list[Move]]:
    """One symbol's day: prices (GBM with injected moves), volumes and the moves injected."""
    n = spec.ticks_per_symbol
    log_price = np.log(rng.uniform(5, 800)) + np.cumsum(rng.normal(0, 0.0004, n))
    spacing = n // (spec.moves_per_symbol + 1)
    moves = []
    for k in range(spec.moves_per_symbol):
        start = spacing * (k + 1) + int(rng.integers(-spacing // 4, spacing // 4))
        move = Move(
            rule=cast(Literal["drop", "rise"], str(rng.choice(["drop", "rise"]))),
            start=start,
            length=int(rng.integers(15, 45)),
            pct=float(rng.uniform(6, 12)),
        )
        sign = -1 if move.rule == "drop" else 1
        target = np.log(1 + sign * move.pct / 100)
        ramp = np.linspace(0, target, move.length + 1)[1:]
        log_price[start + 1 : start + 1 + move.length] += ramp
        log_price[start + 1 + move.length :] += target  # the level shift stays
        moves.append(move)
    volumes = np.round(rng.lognormal(6, 1, n))
    return np.round(np.exp(log_price), 4), volumes, moves


def _anomaly(symbol: str, move: Move, prices: np.ndarray, spec: SeedSpec, rng: np.random.Generator) -> Anomaly:
    """The anomaly detection would store for an injected move, with a human state drawn at random."""
    reference = float(prices[move.start])
    sign = -1 if move.rule == "drop" else 1
    path = prices[move.start + 1 : move.start + 1 + move.length]
    changes = (path / reference - 1) * 100
    crossing = int(np.argmax(changes * sign >= THRESHOLD_PCT))
    peak = int(np.argmax(changes * sign))

    def at(offset: int) -> datetime:
        return from_ms(to_ms(DAY) + (move.start + 1 + offset) * spec.interval_ms)

    crossed_at = at(crossing)
    reference_at = from_ms(to_ms(DAY) + move.start * spec.interval_ms)
    muted = rng.random() < 0.1
    state = cast(AnomalyStatus, str(rng.choice(["open", "acknowledged", "resolved"], p=[0.15, 0.25, 0.6])))
    return Anomaly(
        id=anomaly_id(symbol, move.rule, to_ms(reference_at)),
        symbol=symbol,
        rule=move.rule,
        timestamp=crossed_at,
        price=float(path[crossing]),
        volume=None,
        reference_price=reference,
        reference_timestamp=reference_at,
        change_pct=round(float(changes[crossing]), 4),
        threshold_pct=THRESHOLD_PCT,
        window_seconds=300,
        peak_price=float(path[peak]),
        peak_change_pct=round(float(changes[peak]), 4),
        peak_timestamp=at(peak),
        published_at=crossed_at + timedelta(milliseconds=5),
        detected_at=crossed_at + timedelta(milliseconds=60),
        muted=muted,
        status=state,
        acknowledged_by="U0SEEDOPS" if state == "acknowledged" else None,
        acknowledged_at=crossed_at + timedelta(minutes=3) if state == "acknowledged" else None,
        resolved_at=at(peak) + timedelta(minutes=10) if state == "resolved" else None,
        slack=None if muted else SlackRef(channel="C0SEEDALERTS", ts=f"{to_ms(crossed_at) / 1000 + 1:.6f}"),
    )
