"""The demo's market move and personal watch, before the replay: a chip index falls, most chip stocks follow it and
two fall on their own. The channel gets one market move message (the movers first, with their own buttons); the
demo's user, who watches the group, gets the alert by DM.

A past XNYS session is replayed (a different one each run, like the opening gap), with symbols only this act ticks.
Everything it sets up — the group, the watch, the symbols' state, the storm — is removed when it ends, so neither
the replay nor the next run finds any of it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from kafka import KafkaProducer
from redis import Redis
from rich.console import Console

from pipeline import keys, store
from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.detect import state
from pipeline.schema import Tick, from_ms
from pipeline.settings import Settings
from pipeline.watches import Watches, new_watch
from stack.fake_slack import FakeSlack
from tickwatch.demo.blocks_text import blocks_text
from tickwatch.demo.tour import ALERT_CHANNEL, panel, wait

GROUP = "demo-chips"
BENCHMARK = "CHIPX"  # the chip index: TICKWATCH_BENCHMARKS maps group:demo-chips to it in the demo
FOLLOWERS = {f"CHIP{c}": -(3.4 + i * 0.15) for i, c in enumerate("ABCDEFGH")}  # about the index's -3.5 %
MOVERS = {"CHIPY": -9.0, "CHIPZ": -7.2}  # far more than the index
INDEX_MOVE = -3.5
WATCHER = "U0DEMO0001"  # the demo's Slack user, who watches the group
ACTOR = Actor("tickwatch demo", "cli")


def benchmarks_env() -> dict[str, str]:
    """What the demo's workers need for this act: the group's benchmark."""
    return {"TICKWATCH_BENCHMARKS": json.dumps({f"group:{GROUP}": BENCHMARK})}


def run(
    console: Console,
    settings: Settings,
    redis: Redis,
    producer: KafkaProducer,
    slack: FakeSlack | None,
    session: tuple[int, int],
) -> None:
    """Tick the index and the group through a fall, then show the market move message and the watch's DM."""
    controls = Controls(redis, settings, store.connect(settings), store.Indices(settings.index_prefix))
    symbols = [BENCHMARK, *FOLLOWERS, *MOVERS]
    _forget(redis, settings, symbols)
    controls.change_group(GROUP, ACTOR, add=[*FOLLOWERS, *MOVERS])
    controls.set_rule(f"group:{GROUP}", "drop", ACTOR, threshold_pct=3)
    Watches(redis, settings).add(new_watch(WATCHER, f"group:{GROUP}", "drop", 8.0, 600))
    opened = from_ms(session[0]) + timedelta(minutes=30)
    try:
        with console.status(f"market · {BENCHMARK} falls {abs(INDEX_MOVE):g} %; most of {GROUP} follows…"):
            _send(settings, producer, _fall(BENCHMARK, 500.0, INDEX_MOVE, opened))
            wait(lambda: redis.exists(keys.benchmark_track(BENCHMARK)) or None, timeout=20)
            # The followers first: the first of their alerts keep their own messages (a storm starts past
            # TICKWATCH_STORM_THRESHOLD a minute), the rest and the movers then share one message
            _send(settings, producer, [t for s, m in FOLLOWERS.items() for t in _fall(s, 100.0, m, opened)])
            wait(lambda: _alerted(redis, len(FOLLOWERS)), timeout=30)
            _send(settings, producer, [t for s, m in MOVERS.items() for t in _fall(s, 100.0, m, opened)])
            message = wait(lambda: _market_move(slack), timeout=30) if slack else None
            dm = wait(lambda: _watch_dm(slack), timeout=30) if slack else None
    finally:
        controls.delete_group(GROUP, ACTOR)
        Watches(redis, settings).remove(WATCHER, f"group:{GROUP}")
        _forget(redis, settings, symbols)
    missing = "[red]not seen within 30 s[/red]" if slack else "[dim](posted to your Slack workspace)[/dim]"
    panel(
        console,
        f"market · A market move ({from_ms(session[0]):%a %d %b %Y} on XNYS)",
        f"{BENCHMARK}, the benchmark of group:{GROUP}, fell {abs(INDEX_MOVE):g} %; {len(FOLLOWERS)} of its "
        f"members followed and {len(MOVERS)} fell on their own. The first alerts kept their own messages; past "
        f"the storm threshold the rest became one message:\n\n{message or missing}",
        note="TICKWATCH_BENCHMARKS maps a calendar or a group to its benchmark; every alert then says the "
        "market's move and its own (net of its beta, learned from its own history), and the `relative` rule "
        "alerts on the own move alone.",
    )
    panel(
        console,
        "watch · A personal alert by DM",
        f"{WATCHER} watches `group:{GROUP} drop 8%` (`/watch group:{GROUP} drop 8%`); CHIPY's fall reached it, "
        f"so only they got a DM:\n\n{dm or missing}",
        note="One DM per episode, edited in place, with Acknowledge and Unwatch; channel mutes do not apply; "
        "`/watch quiet 22:00-07:00` holds DMs in those hours and sends one catch-up after. The bot's Home tab "
        "lists your watches, your mutes and the latest alerts on your watches.",
    )


def _alerted(redis: Redis, count: int) -> bool | None:
    """The act's symbols have `count` anomalies between them (their states know them)."""
    found = sum(len(state.load_states(redis, [s])[s].known) for s in FOLLOWERS)
    return True if found >= count else None


def _fall(symbol: str, price: float, move_pct: float, start: datetime) -> list[Tick]:
    """Ten quiet minutes every 20 s, then the price `move_pct` away for a minute."""
    calm = [Tick(symbol=symbol, timestamp=start + timedelta(seconds=20 * i), price=price) for i in range(30)]
    after = price * (1 + move_pct / 100)
    later = start + timedelta(minutes=10)
    return calm + [Tick(symbol=symbol, timestamp=later + timedelta(seconds=20 * i), price=after) for i in range(3)]


def _send(settings: Settings, producer: KafkaProducer, ticks: list[Tick]) -> None:
    for tick in ticks:
        producer.send(settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
    producer.flush()


def _forget(redis: Redis, settings: Settings, symbols: list[str]) -> None:
    """The act's symbols start afresh (each run replays an older session) and leave nothing behind: no state, no
    benchmark track, and no storm the replay's alerts would join."""
    redis.delete(*[keys.symbol_state(s) for s in symbols], keys.benchmark_track(BENCHMARK))
    redis.delete(keys.storm_active(_channel(settings)), keys.storm_recent(_channel(settings)))


def _channel(settings: Settings) -> str:
    return settings.slack_channel or ALERT_CHANNEL


def _market_move(slack: FakeSlack | None) -> str | None:
    """The market move message once every mover is in it (a storm's message is edited as members join)."""
    for call in reversed((slack.calls("chat.postMessage") + slack.calls("chat.update")) if slack else []):
        text = str(call.params.get("text", ""))
        if call.ok and f"Market move: {BENCHMARK}" in text and all(m in text for m in MOVERS):
            return blocks_text(call.params.get("blocks") or [])
    return None


def _watch_dm(slack: FakeSlack | None) -> str | None:
    for call in reversed(slack.calls("chat.postMessage") if slack else []):
        if call.ok and call.params.get("channel") == WATCHER:
            return blocks_text(call.params.get("blocks") or [])
    return None
