"""Market moves (pure): a storm that mostly followed its benchmark becomes one message, movers on their own first."""

from __future__ import annotations

from pipeline.alerting.actions import AlertAction
from pipeline.alerting.market_moves import market_move
from pipeline.alerting.messages import MAX_BLOCKS, AlertContext, StormView, alert_message, alert_text, storm_message
from tests.factories import AT, tsla_crash
from tests.pipeline.alerting.test_messages import actions, payload, texts


def member(symbol: str, change: float, market: float | None = -2.0, beta: float = 1.0, **fields):
    own = None if market is None else change - beta * market
    return tsla_crash(
        id=f"{symbol.lower()}-drop",
        symbol=symbol,
        change_pct=change,
        peak_change_pct=change,
        benchmark=None if market is None else "SPY",
        market_change_pct=market,
        own_change_pct=own,
        beta=beta,
        **fields,
    )


def storm(n_followers: int, movers: list[tuple[str, float]], unknown: int = 0) -> list:
    followers = [member(f"F{i:02}", -2.1 - i / 100) for i in range(n_followers)]
    return followers + [member(s, c) for s, c in movers] + [member(f"U{i}", -3.0, market=None) for i in range(unknown)]


def test_a_storm_that_followed_its_benchmark_is_a_market_move_with_the_movers_on_their_own_first():
    members = storm(34, [("NVDA", -6.0), ("AMD", -4.5), ("INTC", 3.0)], unknown=3)
    moved = market_move(members)
    assert moved is not None and moved.benchmark == "SPY" and moved.total == 40
    assert len(moved.followed) == 34 and moved.market_change_pct == -2.0
    assert [a.symbol for a in moved.own] == ["INTC", "NVDA", "AMD"]  # own +5, -4, -2.5: largest own move first
    text, blocks = storm_message(StormView("storm-9", AT, 5, members))
    body = payload(blocks)
    assert len(body) <= MAX_BLOCKS
    assert body[0]["text"]["text"] == "📉 Market move: SPY \u22122.0 % in 4 min"
    words = texts(body)
    assert "*34 of 40* symbols followed SPY; *3 moved on their own*: INTC, NVDA, AMD." in words
    assert words.index("*INTC*") < words.index("*NVDA*") < words.index("*F33*")
    assert "*NVDA* \u22126.0 % · market \u22122.0 % · own *\u22124.0 %* (β 1.00)" in words
    # Each mover has its own Acknowledge and Mute (on its anomaly), then the storm's buttons
    own_buttons = [b for b in body if b["type"] == "actions" and b["block_id"].startswith("alert:")]
    assert [b["block_id"] for b in own_buttons] == ["alert:intc-drop", "alert:nvda-drop", "alert:amd-drop"]
    assert actions(own_buttons) == [AlertAction.ACKNOWLEDGE, AlertAction.MUTE] * 3
    assert actions(body)[-2:] == [AlertAction.STORM_ACKNOWLEDGE_ALL, AlertAction.STORM_MUTE_ALL]
    assert text.startswith("Market move: SPY \u22122.0 % in 4 min: 34 of 40 symbols followed; 3 moved on their own")


def test_a_storm_of_own_moves_or_without_benchmarks_stays_a_storm():
    assert market_move(storm(3, [("A", -6.0), ("B", -7.0), ("C", -8.0), ("D", -9.0)])) is None  # 3 of 7 followed
    assert market_move([member(f"S{i}", -5.0, market=None) for i in range(10)]) is None
    body = payload(storm_message(StormView("s", AT, 5, storm(2, [("A", -6.0)], unknown=5)))[1])
    assert body[0]["text"]["text"].startswith("🌪️ Market storm")


def test_an_alert_gives_the_market_and_its_own_move():
    alert = member("NVDA", -6.1, market=-2.3)
    assert alert_text(alert).endswith(
        "\u22126.1 % in 4 min: 236.10 vs 250.40 at 14:27:05 · market \u22122.3 % (SPY) · own \u22123.8 %"
    )
    words = texts(payload(alert_message(alert, AlertContext())[1]))
    assert "*\u22126.1 %* · market (SPY) \u22122.3 % · own *\u22123.8 %* (β 1.00)." in words
