"""The demo's market acts, before the replay, meaningful on any day, weekends and holidays included: (1) a 24/7 feed
that goes silent is noticed and recovers (`feed.stale`, then the message edited to `feed.recovered`),
(2) a stock opening 6 % below its previous close alerts as a gap (a past session of XNYS, from
exchange_calendars: a different one each run, so each run shows a new alert), and (3) a market move with a
personal watch's DM (tickwatch.demo.market_move_act).

Both use symbols only these acts tick (`ADA-USD`, `ACME`) and clean up after themselves: the silent feed is
no longer watched once the act ends, so nothing stale is left for the next run's workers to report.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer
from redis import Redis
from rich.console import Console

from pipeline import keys
from pipeline.calendars import closes_ms, opens_ms
from pipeline.feeds.cadence import Feed
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick, from_ms
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from tickwatch.demo import market_move_act
from tickwatch.demo.blocks_text import blocks_text
from tickwatch.demo.tour import panel, wait

FEED = "ADA-USD"  # 24/7 (a crypto pair): its feed can go silent on any day; the replay never ticks it
GAP_STOCK = "ACME"  # XNYS by default: a stock only the demo ticks
TICK_EVERY = 0.5  # seconds between the live feed's ticks
GAP_RUNS = keys.ROOT + "demo:gap-runs"  # which past session the next run opens (one further back each run)


def run(console: Console, settings: Settings, redis: Redis, slack: FakeSlack, offline: bool) -> None:
    producer = make_producer(settings, linger_ms=0)
    try:
        silent_feed(console, settings, redis, producer, slack if offline else None)
        opening_gap(console, settings, redis, producer, slack if offline else None)
        market_move_act.run(console, settings, redis, producer, slack if offline else None, _past_session(redis))
    finally:
        producer.close()


# --- (1) a silent feed ------------------------------------------------------------------------------------


def silent_feed(
    console: Console, settings: Settings, redis: Redis, producer: KafkaProducer, slack: FakeSlack | None
) -> None:
    """Tick live every half second until the feed is learned, fall silent until it is called stale, resume."""
    price = 0.45
    with console.status(f"market · {FEED} ticks live every {TICK_EVERY:g} s, then falls silent…"):
        price = _tick_live(settings, producer, price, count=8)
        learned = wait(lambda: _watched(redis), timeout=20)
        silent_at = time.monotonic()
        stale = learned and wait(lambda: redis.hget(keys.FEED_EPISODES, FEED), timeout=30)
    if not stale:
        panel(console, "market · A silent feed", f"[red]{FEED}'s silence was not noticed within 30 s[/red]")
        _forget(redis)
        return
    noticed = time.monotonic() - silent_at
    stale_text = wait(lambda: _latest_feed_message(slack, "feed silent"), timeout=10) if slack else None
    with console.status(f"market · {FEED} ticks again…"):
        _tick_live(settings, producer, price, count=3)
        recovered = wait(lambda: None if redis.hexists(keys.FEED_EPISODES, FEED) else True, timeout=20)
        back_text = wait(lambda: _latest_feed_message(slack, "feed back"), timeout=10) if slack else None
    _forget(redis)
    body = (
        f"{FEED} ticked every {TICK_EVERY:g} s, then stopped: the feed check (once a second here, across every "
        f"alerts worker) called it stale after {noticed:.0f} s of silence (10 times its usual gap, "
        "TICKWATCH_STALE_FACTOR; at least TICKWATCH_STALE_MIN_SECONDS, 3 s in the demo, 2 min by default).\n\n"
        + (stale_text or "[dim](posted to your Slack workspace)[/dim]")
        + "\n\nIt ticked again: the same message, edited in place"
        + (" (chat.update):\n\n" + back_text if back_text else ".")
        + ("" if recovered else "\n[red]the recovery was not seen within 20 s[/red]")
    )
    panel(
        console,
        "market · A silent feed, noticed and recovered",
        body,
        note="feed.stale and feed.recovered also went to webhook subscribers and the alerts topic. Nothing fires "
        "while a symbol's market is closed (nights, weekends, holidays), for replays of history, or for a "
        "symbol never seen live.",
    )


def _tick_live(settings: Settings, producer: KafkaProducer, price: float, *, count: int) -> float:
    for i in range(count):
        price *= 1.0005 if i % 2 else 0.9996
        tick = Tick(symbol=FEED, timestamp=datetime.now(UTC), price=round(price, 4), volume=10.0)
        producer.send(settings.ticks_topic, key=FEED.encode(), value=tick.to_json()).get(timeout=10)
        time.sleep(TICK_EVERY)
    return price


def _watched(redis: Redis) -> bool | None:
    raw = redis.hget(keys.FEEDS, FEED)
    return True if raw and Feed.decode(raw).watched else None


def _forget(redis: Redis) -> None:
    """The demo's feed is no longer watched: the next run's workers must not find it silent."""
    redis.hdel(keys.FEEDS, FEED)
    redis.hdel(keys.FEED_EPISODES, FEED)


def _latest_feed_message(slack: FakeSlack | None, words: str) -> str | None:
    if slack is None:
        return None
    for call in reversed(slack.calls("chat.postMessage") + slack.calls("chat.update")):
        text = str(call.params.get("text", ""))
        if call.ok and FEED in text and words in text:
            return blocks_text(call.params.get("blocks") or [])
    return None


# --- (2) an opening gap ------------------------------------------------------------------------------------


def opening_gap(
    console: Console, settings: Settings, redis: Redis, producer: KafkaProducer, slack: FakeSlack | None
) -> None:
    """ACME's last five minutes of a past XNYS session at 100, then its next session opening at 94.2."""
    opened, closed = _past_session(redis)
    redis.delete(keys.symbol_state(GAP_STOCK))  # the demo's own stock: each run replays another past session
    before = [from_ms(closed) - timedelta(minutes=5 - i) for i in range(5)]
    after = [from_ms(opened) + timedelta(minutes=i) for i in range(5)]
    ticks = [Tick(symbol=GAP_STOCK, timestamp=at, price=100.0) for at in before]
    ticks += [Tick(symbol=GAP_STOCK, timestamp=at, price=94.2 + i * 0.1) for i, at in enumerate(after)]
    with console.status(f"market · {GAP_STOCK} closes at 100 and opens at 94.20 the next session…"):
        for tick in ticks:
            producer.send(settings.ticks_topic, key=GAP_STOCK.encode(), value=tick.to_json())
        producer.flush()
        found = wait(lambda: _gap_alert(slack), timeout=20) if slack else None
    shown = found or ("[dim](posted to your Slack workspace)[/dim]" if slack is None else "[red]no gap alert[/red]")
    panel(
        console,
        f"market · An opening gap ({from_ms(opened):%a %d %b %Y} on XNYS)",
        f"{GAP_STOCK}'s last tick before the close was 100.00; its first after the next open, 94.20:\n\n{shown}",
        note="The gap rule (TICKWATCH_GAP_PCT, 4 % in the demo; off by default; `/threshold ACME gap 4%`) "
        "judges a session's first tick. Drops and rises never compare across a closed market.",
    )


def _past_session(redis: Redis) -> tuple[int, int]:
    """(open, the previous session's close) of a past XNYS session: one further back each run."""
    now_ms = round(time.time() * 1000)
    opens, closes = opens_ms("XNYS"), closes_ms("XNYS")
    past = [i for i, at in enumerate(opens) if at < now_ms - 24 * 3600 * 1000][1:]
    back = int(redis.incr(GAP_RUNS)) % min(200, len(past))
    i = past[-1 - back]
    return opens[i], closes[i - 1]


def _gap_alert(slack: FakeSlack | None) -> str | None:
    for call in reversed(slack.calls("chat.postMessage") if slack else []):
        if call.ok and f"{GAP_STOCK} opened" in str(call.params.get("text", "")):
            return blocks_text(call.params.get("blocks") or [])
    return None
