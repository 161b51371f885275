"""Mutes as the workers apply them, end to end over the real stack: a group's mute silences its member, a move
past `unless 2x` breaks through its mute (and says whose), and a price mute ends itself on the crossing tick,
audited as the pipeline's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.ingest.generator import Scenario
from pipeline.ingest.topics import make_producer
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

START = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
SCENARIO = Scenario.build(
    symbols=["TSLA", "NVDA", "BTC-USD", "AAPL"],
    start=START,
    interval_s=1,
    duration="16m",
    seed=3,
    events=["drop:TSLA:14%:90s@4m", "drop:NVDA:8%:60s@6m", "rise:BTC-USD:8%:60s@9m"],
)
ALICE = Actor("alice", "slack", "U0ALICE01")


def _level_between_calm_and_the_rise() -> float:
    """A price BTC-USD never reaches before its rise and passes before the rise alerts (+5 % off the window's low)."""
    btc = [t for t in SCENARIO.ticks() if t.symbol == "BTC-USD"]
    rise_at = START + timedelta(minutes=9)
    calm_high = max(t.price for t in btc if t.timestamp < rise_at)
    low = min(t.price for t in btc if rise_at - timedelta(minutes=5) <= t.timestamp < rise_at)
    level = calm_high * 1.005
    assert level < low * 1.05, "the scenario leaves no room between its calm and the alert"
    return level


def test_group_mutes_break_throughs_and_price_mutes_on_the_real_stack(namespace: Namespace):
    ns = namespace
    level = _level_between_calm_and_the_rise()
    ctl = Controls(ns.redis, ns.settings, ns.es, ns.indices)
    ctl.change_group("semis", ALICE, add=["NVDA"])
    ctl.mute("group:semis", ALICE, duration=timedelta(hours=2), reason="conference")
    ctl.mute("TSLA", ALICE, reason="earnings", unless=2)  # 14 % is past twice the 5 % drop
    ctl.mute("BTC-USD", ALICE, above=level)
    with FakeSlack() as slack:
        ns.env.update({"SLACK_BOT_TOKEN": "xoxb-test", "TICKWATCH_SLACK_API_URL": slack.url})
        ns.worker(concurrency=2)
        ns.bridge()
        producer = make_producer(ns.settings)
        for tick in SCENARIO.ticks():
            producer.send(ns.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
        producer.flush()
        wait_for(ns.applied, timeout=120, what="all ticks applied")

        found = {a["symbol"]: a for a in ns.anomalies().values() if a["rule"] in ("drop", "rise")}
        assert found["NVDA"]["muted"] is True
        assert found["TSLA"]["muted"] is False and found["TSLA"]["broke_through"] == "muted by alice: earnings"
        assert found["BTC-USD"]["muted"] is False
        posts = slack.wait_for("chat.postMessage", 2, timeout=30)
        texts = {p.params["text"].split()[1]: p for p in posts}
        assert set(texts) == {"TSLA", "BTC-USD"}
        assert "Broke through a mute (muted by alice: earnings)" in str(texts["TSLA"].params["blocks"])

        assert ctl.mute_of("BTC-USD") is None and ctl.mute_of("TSLA") is not None
        (lifted,) = [c for c in ctl.audit_log(symbol="BTC-USD") if c.action == "unmute"]
        assert lifted.actor.via == "tickwatch" and lifted.summary() == f"unmuted: price at or above {level:g}"
