"""`tickwatch ingest`'s connection loop against local servers speaking Coinbase's and Binance's documented
websocket protocols (stack.fake_venues): mapping, reconnects, duplicates, gaps and malformed frames."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from pipeline.ingest.live import Stats, stream
from pipeline.schema import Tick
from stack.fake_venues import DROP, FakeVenue, alpaca_trade, binance_trade, coinbase_heartbeat, coinbase_match

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def match(trade_id: int) -> dict:
    return coinbase_match("BTC-USD", trade_id, 97_000 + trade_id, 0.01 * trade_id, AT + timedelta(seconds=trade_id))


def collect(source: str, pairs: list[str], url: str, want: int, timeout: float = 20) -> tuple[list[Tick], Stats]:
    """Run the loop until `want` ticks arrived (or `timeout`), then stop it as SIGTERM would."""
    ticks: list[Tick] = []
    stats = Stats()

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(stream(source, pairs, ticks.append, stats, stop, url=url))
        deadline = time.monotonic() + timeout
        while len(ticks) < want and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # anything more that would come (duplicates) comes now
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(run())
    return ticks, stats


def test_coinbase_matches_become_ticks_with_the_exchanges_time():
    with FakeVenue("coinbase", [[coinbase_heartbeat("BTC-USD"), match(1), match(2), match(3)]]) as venue:
        ticks, stats = collect("coinbase", ["BTC-USD"], venue.url, want=3)
    assert [(t.symbol, t.price, t.volume, t.source) for t in ticks] == [
        ("BTC-USD", 97_001, 0.01, "coinbase"),
        ("BTC-USD", 97_002, 0.02, "coinbase"),
        ("BTC-USD", 97_003, 0.03, "coinbase"),
    ]
    assert ticks[0].timestamp == AT + timedelta(seconds=1)  # event time from the venue, not receive time
    assert venue.subscriptions == [{"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches"]}]
    assert stats.symbols["BTC-USD"].ticks == 3 and stats.reconnects == 0


def test_a_dropped_connection_reconnects_resubscribes_and_neither_loses_nor_repeats_a_trade():
    sessions = [[match(1), match(2), match(3), DROP], [match(2), match(3), match(4), match(5)]]
    with FakeVenue("coinbase", sessions) as venue:
        ticks, stats = collect("coinbase", ["BTC-USD"], venue.url, want=5)
    assert [t.price - 97_000 for t in ticks] == [1, 2, 3, 4, 5]
    assert stats.reconnects >= 1 and stats.duplicates == 2 and len(venue.subscriptions) == 2


def test_a_gap_in_trade_ids_is_counted_and_malformed_frames_are_skipped():
    broken = dict(match(3), price="not a number")
    frames = [match(1), "{not json", {"type": "match", "product_id": "BTC-USD"}, broken, match(2), match(6)]
    with FakeVenue("coinbase", [frames]) as venue:
        ticks, stats = collect("coinbase", ["BTC-USD"], venue.url, want=3)
    assert [t.price - 97_000 for t in ticks] == [1, 2, 6]
    assert stats.gaps == 1 and stats.missing == 3  # ids 3, 4 and 5 never arrived as trades
    assert stats.malformed >= 2  # the frame that is not JSON, the match whose price is not a number


def test_binance_trades_become_ticks_of_the_normalised_symbol():
    trades = [binance_trade("BTCUSDT", 700 + i, 97_100.5 + i, 0.5, AT + timedelta(seconds=i)) for i in range(3)]
    with FakeVenue("binance", [trades]) as venue:
        ticks, _ = collect("binance", ["BTC/USDT"], venue.url, want=3)
    assert [(t.symbol, t.price, t.source) for t in ticks] == [
        ("BTC-USDT", 97_100.5, "binance"),
        ("BTC-USDT", 97_101.5, "binance"),
        ("BTC-USDT", 97_102.5, "binance"),
    ]
    assert ticks[2].timestamp == AT + timedelta(seconds=2)
    assert venue.subscriptions[0]["method"] == "SUBSCRIBE" and venue.subscriptions[0]["params"] == ["btcusdt@trade"]


def test_alpaca_trades_become_ticks_with_the_credentials_sent_and_resent_trades_dropped():
    trades = [alpaca_trade("AAPL", 96_921 + 7 * i, 226.5 + i, 100, AT + timedelta(seconds=i)) for i in range(3)]
    sessions = [[*trades[:2], DROP], [trades[1], trades[2]]]
    ticks: list[Tick] = []
    stats = Stats()

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(
            stream("alpaca", ["aapl"], ticks.append, stats, stop, url=venue.url, credentials=("key-id", "secret"))
        )
        deadline = time.monotonic() + 30
        while len(ticks) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 20)

    with FakeVenue("alpaca", sessions) as venue:
        asyncio.run(run())
    assert [(t.symbol, t.price, t.volume, t.source) for t in ticks] == [
        ("AAPL", 226.5, 100, "alpaca"),
        ("AAPL", 227.5, 100, "alpaca"),
        ("AAPL", 228.5, 100, "alpaca"),
    ]
    assert ticks[1].timestamp == AT + timedelta(seconds=1)
    assert stats.duplicates == 1 and stats.gaps == 0  # Alpaca's ids are not consecutive: no gap is claimed
    assert venue.subscriptions[0]["trades"] == ["AAPL"] and len(venue.subscriptions) == 2
