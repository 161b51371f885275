"""Celery tasks: apply a partition's batch of ticks (detect, store, hand alerts on) and index its ticks.

The bridge sends one `process_batch` per Kafka poll. For every partition, its offset ranges are applied one
at a time and in offset order (see pipeline.detect.state), so any number of workers gives the result one would.
Side effects are handed on before the state commit: a crash re-runs the batch, ES writes are idempotent
(fixed ids) and deliveries are claimed per channel, so re-processing is harmless. Alerts and tick storage
are tasks of their own, so neither waits for the other or holds up the next batch.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import Task

from pipeline import store
from pipeline.alerting import dms, slack_messages
from pipeline.alerting import tasks as delivery_tasks
from pipeline.alerting.channels import channel_names
from pipeline.calendars import Calendars, for_patterns, sessions_ms
from pipeline.context import Context
from pipeline.controls import SymbolControls, controls_for
from pipeline.detect import state
from pipeline.detect.detection import Outcome, Rule, SymbolState, TickPoint, advance, episode_key
from pipeline.detect.market import Market, Track, benchmark_for
from pipeline.detect.silence import Hush
from pipeline.feeds import watch
from pipeline.metrics import Recorder
from pipeline.schema import AlertEvent, Anomaly, Batch, PartitionRange, StoredTick, SuspectFlag, TickRow
from pipeline.watches import Watch, Watches, rules_for
from pipeline.webhooks import subscriptions
from pipeline.worker.app import PROCESS_BATCH, STORE_TICKS, app, context, send

logger = logging.getLogger(__name__)

PREDECESSOR_WAIT_SECONDS = 30.0


@app.task(
    bind=True,
    name=PROCESS_BATCH,
    soft_time_limit=120,  # waiting for a predecessor takes at most 30 s, applying far less
    time_limit=150,
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
)
def process_batch(self: Task, batch: Batch) -> dict[str, int]:
    """Apply one batch as soon as, for each of its partitions, the previous range has been applied.

    Waiting here is safe: batches are queued in poll order and a worker takes a task only when a child is
    free (prefetch 1), so a predecessor is already running or done. After PREDECESSOR_WAIT_SECONDS the
    batch is retried later, unless its partitions have not moved for TICKWATCH_GAP_TIMEOUT_SECONDS: then
    the missing range is taken as gone (e.g. offsets reset past it) and the batch goes ahead.
    """
    ctx = context()
    parts = batch["parts"]
    deadline = time.monotonic() + PREDECESSOR_WAIT_SECONDS
    while not _all_ready(parts, state.progress_of(ctx.redis, parts)):
        if time.monotonic() > deadline:
            stalled = state.stalled_seconds(ctx.redis, parts)
            if stalled <= ctx.settings.gap_timeout_seconds:
                raise self.retry(countdown=1, max_retries=None)
            logger.warning(
                "partitions %s have not moved for %.0fs; skipping the offsets before %s",
                [p["partition"] for p in parts],
                stalled,
                [p["first_offset"] for p in parts],
            )
            break
        time.sleep(0.005)
    # The locks make check-and-apply atomic against a duplicate copy of this very batch.
    with state.partition_locks(ctx.redis, parts):
        return apply_batch(ctx, batch, state.progress_of(ctx.redis, parts))


def _all_ready(parts: list[PartitionRange], done: dict[int, int | None]) -> bool:
    return all(_ready(part, done) for part in parts)


def _ready(part: PartitionRange, done: dict[int, int | None]) -> bool:
    """The partition's earlier offsets are applied (no progress at all: Redis was emptied, start anywhere)."""
    applied = done[part["partition"]]
    return applied is None or part["first_offset"] <= applied


def apply_batch(ctx: Context, batch: Batch, done: dict[int, int | None]) -> dict[str, int]:
    """Detect, store, alert and commit the ticks of `batch` not applied before (offset >= `done`)."""
    began = time.perf_counter()
    rows = (TickRow(*row) for row in batch["ticks"])  # JSON arrays on the wire (without `trusted` before it existed)
    fresh = [tick for tick in rows if (applied := done[tick.partition]) is None or tick.offset >= applied]
    by_symbol: dict[str, list[TickPoint]] = defaultdict(list)
    for tick in fresh:
        by_symbol[tick.symbol].append(TickPoint(tick.ts, tick.price, tick.volume, tick.published, tick.trusted))

    controls = controls_for(ctx.redis, ctx.settings, sorted(by_symbol))
    watched = _watched(ctx, controls)
    calendars = for_patterns(ctx.settings.calendars)  # once per batch: each symbol's sessions, by its exchange
    markets = _markets(ctx, by_symbol, controls, calendars)
    # Benchmarks first: the symbols after them measure against their tracks with this batch's ticks in
    symbols = sorted(by_symbol, key=lambda symbol: (symbol not in markets.tracks, symbol))
    states: dict[str, SymbolState] = state.load_states(ctx.redis, symbols)
    now = datetime.now(UTC)
    clock_skew_ms = ctx.settings.clock_skew_seconds * 1000 or None  # 0: the guard is off
    anomalies: list[Anomaly] = []
    alerts: list[Anomaly] = []  # newly detected, not muted
    resolved: list[Anomaly] = []  # episodes that ended, not muted
    deepened: list[Anomaly] = []  # a new peak of an alert already out: only its Slack message is edited
    personal: list[tuple[Anomaly, Watch]] = []  # watch alerts that changed: each to its watcher's DM
    late: set[tuple[str, int]] = set()
    lifted: list[Hush] = []  # mutes whose condition a tick met
    suspects: dict[tuple[str, int], str] = {}  # skewed timestamps and bad prints -> why
    for symbol in symbols:
        outcome = advance(
            states[symbol],
            symbol,
            by_symbol[symbol],
            controls[symbol].rules + [rule for _, rule in watched.get(symbol, ())],
            lateness_ms=ctx.settings.lateness_seconds * 1000,
            now=now,
            silence=controls[symbol].hushes,
            sessions=sessions_ms(calendars.code_for(symbol)),
            market=markets.of(symbol),
            clock_skew_ms=clock_skew_ms,
            baseline_seconds=ctx.settings.baseline_seconds,
            beta_seconds=ctx.settings.beta_seconds,
        )
        if symbol in markets.tracks:
            markets.moved(symbol, by_symbol[symbol], outcome)
        suspects.update(((symbol, ts), reason) for ts, reason in outcome.suspects)
        found = [a for a in outcome.anomalies if a.watcher is None]
        anomalies += found
        alerts += [a for a in found if a.id in outcome.new_ids and not a.muted]
        resolved += [a for a in found if a.id in outcome.resolved_ids and not a.muted]
        deepened += [a for a in found if a.id in outcome.deepened_ids and not a.muted]
        if symbol in watched:
            told = {*outcome.new_ids, *outcome.resolved_ids, *outcome.deepened_ids}
            watch_of = {rule.key: mine for mine, rule in watched[symbol]}
            personal += [
                (a, watch_of[episode_key(a.rule, a.watcher)])
                for a in outcome.anomalies
                if a.watcher is not None and a.id in told and episode_key(a.rule, a.watcher) in watch_of
            ]
        late.update((symbol, tick.ts) for tick in outcome.late)
        lifted += outcome.lifted

    # Alerts first: they must not wait for (or on) storage. A re-run of this batch re-sends nothing, as
    # deliveries are claimed per channel and event id (detected and resolved have their own).
    channels = channel_names(ctx.settings)
    refresh = slack_messages.refresh_later(ctx.redis, ctx.settings)
    events = [AlertEvent.for_anomaly(a) for a in alerts] + [
        AlertEvent.for_anomaly(a, "anomaly.resolved") for a in resolved
    ]
    for event in events:
        payload = event.model_dump(mode="json")
        for channel in channels:
            delivery_tasks.enqueue(ctx.redis, ctx.settings, channel, payload)
        subscriptions.dispatch(ctx.redis, ctx.settings, payload)  # webhooks: one delivery per subscription
    for anomaly, mine in personal:  # by DM only: never the channel, webhooks or the alerts topic
        dms.enqueue(ctx.redis, ctx.settings, anomaly, mine.target, mine.says())
    if deepened and "slack" in channels:
        for anomaly in deepened:
            slack_messages.anomaly_changed(ctx.redis, ctx.settings, anomaly, refresh)

    # Anomaly documents change as episodes deepen, so they are written here, in batch order. Tick documents
    # are only created (then at most flagged suspect), so they are written by a task of their own: storage
    # then runs in parallel, off the path the next batch of this lane waits on.
    if anomalies:
        store.write(ctx.es, [store.anomaly_action(ctx.indices, anomaly) for anomaly in anomalies])
    for hush in lifted:
        ctx.controls.lift(hush, hush.condition())
    if fresh:
        keys = [(tick.symbol, tick.ts) for tick in fresh]
        stored = [
            StoredTick(
                tick.symbol,
                tick.ts,
                tick.price,
                tick.volume,
                tick.partition,
                tick.offset,
                tick.published,
                key in late,
                suspects.get(key),
            )
            for tick, key in zip(fresh, keys, strict=True)
        ]
        # Bad prints of earlier batches (the tick that shows one up may come in the next batch) are flagged
        # on their stored documents.
        stored_now = set(keys)
        earlier = [
            SuspectFlag(symbol, ts, why) for (symbol, ts), why in suspects.items() if (symbol, ts) not in stored_now
        ]
        send(ctx.settings, STORE_TICKS, stored, earlier, queue=ctx.settings.celery_queue)

    counts = {
        "ticks": len(fresh),
        "late": len(late),
        "anomalies": len({a.id for a in anomalies}),
        "alerts": len(alerts),
        "watch_alerts": len(personal),
        "batches": 1,
        "suspect": len(suspects),
    }
    progress = {
        (part["topic"], part["partition"]): max(part["next_offset"], done[part["partition"]] or 0)
        for part in batch["parts"]
    }
    figures = Recorder()
    for anomaly in alerts:
        if anomaly.published_at is not None:
            figures.observe("detection_latency_seconds", (anomaly.detected_at - anomaly.published_at).total_seconds())
    figures.observe("batch_apply_seconds", time.perf_counter() - began)
    figures.observe("batch_latency_seconds", time.time() - batch["sent_at"])
    feeds = watch.learned(ctx.redis, ctx.settings, by_symbol, now)  # nothing (no Redis call) for replays
    state.commit(
        ctx.redis, progress=progress, states=states, counts=counts, figures=figures, feeds=feeds, tracks=markets.changed
    )
    return counts


@dataclass
class _Markets:
    """One batch's benchmarks: each symbol's, and the recent prices of those it needs or holds ticks of."""

    benchmark: dict[str, str]  # symbol -> its benchmark
    tracks: dict[str, Track]
    horizon_ms: int
    changed: dict[str, Track] = field(default_factory=dict)

    def of(self, symbol: str) -> Market | None:
        name = self.benchmark.get(symbol)
        return None if name is None else Market(name, self.tracks[name])

    def moved(self, benchmark: str, ticks: list[TickPoint], outcome: Outcome) -> None:
        """A benchmark's ticks evaluated in this batch join its track (not the late, repeated or skewed)."""
        left_out = {tick.ts for tick in (*outcome.late, *outcome.duplicates)} | {ts for ts, _ in outcome.suspects}
        track = self.tracks[benchmark]
        track.add(((tick.ts, tick.price) for tick in ticks if tick.ts not in left_out), self.horizon_ms)
        self.changed[benchmark] = track


def _watched(ctx: Context, controls: dict[str, SymbolControls]) -> dict[str, list[tuple[Watch, Rule]]]:
    """The batch's symbols' personal watches as rules (their own and their groups'), read in one round trip."""
    targets = {t for symbol, found in controls.items() for t in (symbol, *found.groups)}
    on = Watches(ctx.redis, ctx.settings).for_targets(targets)
    if not on:
        return {}
    groups = {symbol: found.groups for symbol, found in controls.items()}
    return rules_for(sorted(controls), groups, on, ctx.settings)


def _markets(
    ctx: Context, by_symbol: dict[str, list[TickPoint]], controls: dict[str, SymbolControls], calendars: Calendars
) -> _Markets:
    configured = ctx.settings.benchmarks
    if not configured:
        return _Markets({}, {}, 0)
    benchmark = {
        symbol: found
        for symbol in by_symbol
        if (found := benchmark_for(configured, symbol, controls[symbol].groups, calendars.code_for(symbol)))
    }
    needed = set(benchmark.values()) | (set(configured.values()) & set(by_symbol))
    return _Markets(benchmark, state.load_tracks(ctx.redis, needed), ctx.settings.benchmark_history_seconds * 1000)


@app.task(
    name=STORE_TICKS,
    soft_time_limit=150,  # the Elasticsearch client retries 3 times, 30 s each
    time_limit=180,
    max_retries=None,
    autoretry_for=(Exception,),
    retry_backoff=1,
    retry_backoff_max=240,
    retry_jitter=True,
)
def store_ticks(ticks: list[StoredTick], suspects: list[SuspectFlag] | None = None) -> int:
    """Bulk-index one batch's ticks; retried until Elasticsearch takes them (ids make repeats harmless).

    A tick already stored is left as it is (see store.tick_action); `suspects` flags ticks stored by earlier
    batches. The documents are built here, off the path the lane's next batch waits on. Both arrive as JSON
    arrays.
    """
    ctx = context()
    actions = itertools.chain(
        (store.tick_action(ctx.indices, StoredTick._make(tick)) for tick in ticks),
        (store.suspect_action(ctx.indices, *SuspectFlag._make(flag)) for flag in suspects or ()),
    )
    return store.write(ctx.es, actions)
