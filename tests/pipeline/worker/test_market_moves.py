"""Moves against the market on the real stack: a benchmark drops, most of its group follows and two symbols move
on their own; the workers put each alert beside the benchmark's move, and Slack gets one market move message
whose numbers match an independent computation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pipeline.alerting.messages import pct
from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.ingest.topics import make_producer
from pipeline.schema import Tick
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

OPEN = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)  # a Tuesday's XNYS session
DROP_AT = OPEN + timedelta(minutes=20)
FOLLOWERS = {f"SEMI{i}": 100.0 * (1 - (3.6 + i / 10) / 100) for i in range(8)}  # -3.6 % to -4.3 %
MOVERS = {"NVDA": 91.0, "AMD": 92.5}  # -9 % and -7.5 %: far more than the market
BENCHMARK_BEFORE, BENCHMARK_AFTER = 500.0, 482.5  # -3.5 %


def ticks(symbol: str, before: float, after: float) -> list[Tick]:
    """A minute of quiet prices every 20 s to DROP_AT, then the new price for a minute."""
    times = [OPEN + timedelta(seconds=20 * i) for i in range(int((DROP_AT - OPEN).total_seconds()) // 20)]
    calm = [Tick(symbol=symbol, timestamp=t, price=before) for t in times]
    return calm + [Tick(symbol=symbol, timestamp=DROP_AT + timedelta(seconds=s), price=after) for s in (0, 20, 40)]


def test_a_market_move_groups_the_followers_and_puts_the_movers_on_their_own_first(namespace: Namespace):
    ns = namespace
    controls = Controls(ns.redis, ns.settings, ns.es, ns.indices)
    ops = Actor("ops", "cli")
    controls.change_group("semis", ops, add=[*FOLLOWERS, *MOVERS])
    controls.set_rule("group:semis", "drop", ops, threshold_pct=3)
    with FakeSlack() as slack:
        ns.env.update(
            {
                "SLACK_BOT_TOKEN": "xoxb-test",
                "TICKWATCH_SLACK_API_URL": slack.url,
                "TICKWATCH_BENCHMARKS": json.dumps({"group:semis": "SOXX"}),
                "TICKWATCH_STORM_THRESHOLD": "1",
                "TICKWATCH_STORM_WINDOW_SECONDS": "120",
                "TICKWATCH_STORM_EDIT_INTERVAL_SECONDS": "1",
            }
        )
        ns.worker(concurrency=2)
        ns.bridge()
        producer = make_producer(ns.settings)

        def publish(found: list[Tick]) -> None:
            for tick in found:
                producer.send(ns.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
            producer.flush()
            wait_for(ns.applied, timeout=60, what="ticks applied")

        # One alert of its own first: with a storm threshold of 1, the group's alerts then all join one storm
        publish(ticks("LONE", 50.0, 40.0))
        slack.wait_for("chat.postMessage", 1, timeout=30)
        publish(ticks("SOXX", BENCHMARK_BEFORE, BENCHMARK_AFTER))  # the benchmark first, as the market moved
        publish([tick for symbol, after in {**FOLLOWERS, **MOVERS}.items() for tick in ticks(symbol, 100.0, after)])

        found = {a["symbol"]: a for a in ns.anomalies().values()}
        assert set(found) == {"LONE", *FOLLOWERS, *MOVERS}  # SOXX's -3.5 % is under its 5 % default
        market = (BENCHMARK_AFTER / BENCHMARK_BEFORE - 1) * 100  # computed here, from the ticks sent
        for symbol, after in {**FOLLOWERS, **MOVERS}.items():
            alert, change = found[symbol], (after / 100.0 - 1) * 100
            assert alert["benchmark"] == "SOXX" and alert["beta"] == 1.0  # 20 minutes of history: beta not known yet
            assert abs(alert["market_change_pct"] - market) < 1e-3
            assert abs(alert["own_change_pct"] - (change - market)) < 1e-3
        assert found["LONE"].get("benchmark") is None

        def market_move() -> dict | None:
            for call in reversed(slack.calls()):
                if call.method in ("chat.postMessage", "chat.update") and "8 of 10" in call.params.get("text", ""):
                    return call.params
            return None

        message = wait_for(market_move, timeout=60, what="the market move message")
        # confirmed on the second tick of the drop (TICKWATCH_CONFIRM_TICKS 2): 40 s from the last calm tick
        assert message["text"].startswith(f"Market move: SOXX {pct(market)} in 40 s: 8 of 10 symbols followed")
        blocks = message["blocks"] if isinstance(message["blocks"], list) else json.loads(message["blocks"])
        words = "\n".join(b["text"]["text"] for b in blocks if b["type"] in ("header", "section"))
        assert blocks[0]["text"]["text"] == f"📉 Market move: SOXX {pct(market)} in 40 s"
        assert "*8 of 10* symbols followed SOXX; *2 moved on their own*: NVDA, AMD." in words
        nvda_own = pct(-9.0 - market)
        assert f"*NVDA* {pct(-9.0)} · market {pct(market)} · own *{nvda_own}* (β 1.00)" in words
        assert words.index("*NVDA*") < words.index("*AMD*") < words.index("*SEMI7*")
        movers = [b["block_id"] for b in blocks if b["type"] == "actions" and b["block_id"].startswith("alert:")]
        assert movers == [f"alert:{found['NVDA']['id']}", f"alert:{found['AMD']['id']}"]
