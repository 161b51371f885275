"""Feed health on the clock: learning cadences from each batch, and the check that notices silent feeds.

Silence has no tick to trigger it, so the check runs on the clock of the alerts workers (the scheduler thread
every one of them runs, pipeline.worker.scheduler): each interval of TICKWATCH_FEED_CHECK_SECONDS is claimed
in Redis by exactly one of them (SET NX on the interval's number), whichever comes first, so any number of
workers check once per interval and a worker killed -9 only leaves its interval to the next one. The episodes
and the deliveries they call for are written in one Redis transaction (deliveries as delayed tasks due now,
pipeline.worker.later), so a check that dies halfway has done nothing or everything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from pipeline import keys
from pipeline.calendars import for_patterns
from pipeline.context import Context
from pipeline.controls import muted_among
from pipeline.detect.detection import TickPoint
from pipeline.feeds import cadence
from pipeline.feeds.cadence import Feed
from pipeline.feeds.health import Episode, Policy, Verdict, judge
from pipeline.schema import FeedEvent
from pipeline.settings import Settings
from pipeline.worker import later
from pipeline.worker.app import FEED_EVENT, FEED_OUTAGE

logger = logging.getLogger(__name__)


def learned(redis: Redis, settings: Settings, ticks: Mapping[str, list[TickPoint]], now: datetime) -> dict[str, bytes]:
    """The feeds of the batch's symbols after its live ticks, to store with the batch's commit; nothing (and
    no Redis call) for a batch without a live tick, such as any replay of history."""
    now_ms = int(now.timestamp() * 1000)
    live = [s for s, points in ticks.items() if any(cadence.is_live(p.ts, p.published, now_ms) for p in points)]
    if not live:
        return {}
    known = dict(zip(live, redis.hmget(keys.FEEDS, live), strict=True))
    found = for_patterns(settings.calendars)
    changed: dict[str, bytes] = {}
    for symbol in live:
        raw = known[symbol]
        before = Feed.decode(raw) if raw else None
        points = [(p.ts, p.price, p.published) for p in ticks[symbol]]
        after = cadence.learn(before, points, now_ms, market_open=found.session_of(symbol, now).open)
        if after is not None and after != before:
            changed[symbol] = after.encode()
    return changed


def check_if_due(ctx: Context, now: datetime) -> Verdict | None:
    """Run this interval's check if no other worker has; None when another one has it."""
    interval = ctx.settings.feed_check_seconds
    slot = int(now.timestamp() // interval)
    if not ctx.redis.set(keys.feed_check(slot), 1, nx=True, ex=max(3, round(3 * interval))):
        return None
    return check(ctx.redis, ctx.settings, now)


def check(redis: Redis, settings: Settings, now: datetime) -> Verdict:
    """Judge every watched feed now, record what changed and queue its deliveries."""
    feeds = {keys.text(k): Feed.decode(v) for k, v in redis.hgetall(keys.FEEDS).items()}
    episodes = {keys.text(k): Episode.decode(v) for k, v in redis.hgetall(keys.FEED_EPISODES).items()}
    if not feeds:
        return Verdict()
    muted = muted_among(redis, list(feeds))
    found = for_patterns(settings.calendars)
    policy = Policy(settings.stale_factor, settings.stale_min_seconds, settings.feed_down_threshold)
    verdict = judge(now, feeds, episodes, lambda s: found.session_of(s, now), muted.__contains__, policy)
    if verdict.stale or verdict.recovered:
        _record(redis, settings, verdict, episodes, now)
    return verdict


def _record(redis: Redis, settings: Settings, verdict: Verdict, episodes: Mapping[str, Episode], now: datetime) -> None:
    queue, at = settings.alerts_queue, now.timestamp()
    pipe = redis.pipeline(transaction=True)
    if verdict.stale:
        pipe.hset(keys.FEED_EPISODES, mapping={e.symbol: e.encode() for e in verdict.stale})
    if verdict.recovered:
        pipe.hdel(keys.FEED_EPISODES, *(r.episode.symbol for r in verdict.recovered))
    for episode in verdict.stale:
        _log("stale", episode)
        if not episode.muted:
            later.send_later(pipe, FEED_EVENT, stale_event(episode), queue=queue, at=at)
    for recovery in verdict.recovered:
        _log("back", recovery.episode)
        if not recovery.episode.muted:
            later.send_later(pipe, FEED_EVENT, recovered_event(recovery.episode, recovery.feed), queue=queue, at=at)
    for code, (silent, back) in _outages(verdict, episodes).items():
        args = (code, silent, back, verdict.watched.get(code, len(silent)), now.timestamp())
        later.send_later(pipe, FEED_OUTAGE, *args, queue=queue, at=at)
    pipe.execute()


def _outages(verdict: Verdict, episodes: Mapping[str, Episode]) -> dict[str, tuple[list[str], list[str]]]:
    """Calendars whose 'feed down' message changes: (silent symbols still grouped, symbols back this check)."""
    back: dict[str, list[str]] = {}
    for recovery in verdict.recovered:
        if recovery.episode.grouped:
            back.setdefault(recovery.episode.calendar, []).append(recovery.episode.symbol)
    gone = {r.episode.symbol for r in verdict.recovered}
    grouped = [e for e in [*episodes.values(), *verdict.stale] if e.grouped and e.symbol not in gone]
    changed = set(back) | {e.calendar for e in verdict.stale if e.grouped}
    return {
        code: (sorted(e.symbol for e in grouped if e.calendar == code), sorted(back.get(code, []))) for code in changed
    }


def _log(what: str, episode: Episode) -> None:
    note = " (muted: recorded, not notified)" if episode.muted else ""
    logger.warning(
        "feed %s %s: last tick %s%s",
        what,
        episode.symbol,
        datetime.fromtimestamp(episode.last_ms / 1000, UTC).isoformat(),
        note,
        extra={"symbol": episode.symbol},
    )


def _event(kind: str, event_id: str, data: FeedEvent, at: datetime) -> dict[str, Any]:
    return {"type": kind, "id": event_id, "timestamp": at.isoformat(), "data": data.model_dump(mode="json")}


def stale_event(episode: Episode) -> dict[str, Any]:
    """The `feed.stale` envelope (its id derives from the symbol and its last tick: a re-run sends no second)."""
    noticed = datetime.fromtimestamp(episode.noticed_ms / 1000, UTC)
    data = FeedEvent(
        symbol=episode.symbol,
        calendar=episode.calendar,
        last_tick_at=datetime.fromtimestamp(episode.last_ms / 1000, UTC),
        last_price=episode.last_price,
        usual_gap_seconds=round(episode.gap_ms / 1000, 3),
        noticed_at=noticed,
        grouped=episode.grouped,
    )
    return _event("feed.stale", f"msg_feed_{episode.symbol}_{episode.last_ms}", data, noticed)


def recovered_event(episode: Episode, feed: Feed) -> dict[str, Any]:
    stale = stale_event(episode)
    recovered = datetime.fromtimestamp(feed.last_ms / 1000, UTC)
    data = FeedEvent.model_validate(
        {**stale["data"], "recovered_at": recovered, "silent_seconds": (feed.last_ms - episode.last_ms) / 1000}
    )
    return _event("feed.recovered", f"{stale['id']}_recovered", data, recovered)
