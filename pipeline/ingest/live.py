"""Live trades from an exchange into ticks: the connection loop of `tickwatch ingest`.

Careful with the wire: a dropped connection is retried with exponential backoff and jitter (ccxt resubscribes on
the next watch); trades a venue sends again after a reconnect are recognised by their ids and dropped; a jump in
a venue's consecutive trade ids is counted as a gap; a trade that does not make a valid tick is skipped and
counted, never a crash. Event time is the exchange's own timestamp, never the receive time. The tick goes to
`on_tick` (Kafka, or stdout for --dry-run), which may block: that is the backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from pipeline.ingest.venues import VENUES, Venue, parse_pair, tick_symbol
from pipeline.schema import Tick, normalise_symbol

logger = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
TRADES_CACHE = 200_000  # trades ccxt may hold for a symbol between two watch calls
REMEMBERED_IDS = 10_000  # per symbol: enough to recognise what a venue resends after a reconnect


@dataclass
class SymbolFigures:
    ticks: int = 0
    last_price: float | None = None
    lag_ms: float | None = None  # exchange timestamp -> handed on


@dataclass
class Stats:
    """What the live view and the metrics show."""

    symbols: dict[str, SymbolFigures] = field(default_factory=dict)
    reconnects: int = 0
    gaps: int = 0
    missing: int = 0  # trades the gaps skipped over
    duplicates: int = 0
    malformed: int = 0
    started: float = field(default_factory=time.monotonic)


class StatsCollector(Collector):
    """`tickwatch ingest`'s figures as Prometheus metrics, served by the ingest process itself."""

    def __init__(self, source: str, stats: Stats) -> None:
        self.source, self.stats = source, stats

    def collect(self) -> Iterator[Metric]:
        stats, labels = self.stats, [self.source]
        ticks = CounterMetricFamily(
            "tickwatch_ingest_ticks", "Ticks handed on, per symbol", labels=["source", "symbol"]
        )
        lag = GaugeMetricFamily(
            "tickwatch_ingest_lag_seconds",
            "Exchange timestamp -> tick handed on, last trade",
            labels=["source", "symbol"],
        )
        for symbol, figures in stats.symbols.items():
            ticks.add_metric([self.source, symbol], figures.ticks)
            if figures.lag_ms is not None:
                lag.add_metric([self.source, symbol], figures.lag_ms / 1000)
        yield ticks
        yield lag
        for name, value, about in (
            ("reconnects", stats.reconnects, "Connections lost and made again"),
            ("gaps", stats.gaps, "Jumps in the venue's consecutive trade ids"),
            ("missing_trades", stats.missing, "Trades the gaps skipped over"),
            ("duplicates", stats.duplicates, "Trades resent after a reconnect, dropped"),
            ("malformed_frames", stats.malformed, "Frames or trades that could not be read, skipped"),
        ):
            family = CounterMetricFamily(f"tickwatch_ingest_{name}", about, labels=["source"])
            family.add_metric(labels, value)
            yield family


class TradeFilter:
    """Drops trades already seen (by id) and counts gaps in a venue's consecutive numeric trade ids. Pure."""

    def __init__(self, *, consecutive: bool = True) -> None:
        self._seen: dict[str, tuple[set[str], deque[str]]] = {}
        self._last: dict[str, int] = {}
        self._consecutive = consecutive

    def accept(self, symbol: str, trade_id: str, stats: Stats) -> bool:
        seen, order = self._seen.setdefault(symbol, (set(), deque()))
        if trade_id in seen:
            stats.duplicates += 1
            return False
        if self._consecutive and trade_id.isdigit():
            number, last = int(trade_id), self._last.get(symbol)
            if last is not None and number <= last:
                stats.duplicates += 1  # older than what was handed on: resent, already published
                return False
            if last is not None and number > last + 1:
                stats.gaps += 1
                stats.missing += number - last - 1
                logger.warning("%s: trade ids %d to %d never arrived", symbol, last + 1, number - 1)
            self._last[symbol] = number
        seen.add(trade_id)
        order.append(trade_id)
        if len(order) > REMEMBERED_IDS:
            seen.discard(order.popleft())
        return True


def to_tick(venue: Venue, trade: dict[str, Any]) -> Tick | None:
    """The tick of a ccxt trade (exchange timestamp, price, amount), or None when it cannot make a valid one."""
    try:
        base, quote = parse_pair(str(trade["symbol"]))
        return Tick(
            symbol=tick_symbol(base, quote),
            timestamp=datetime.fromtimestamp(int(trade["timestamp"]) / 1000, UTC),
            price=float(trade["price"]),
            volume=float(trade["amount"]) if trade.get("amount") is not None else None,
            source=venue.name,
        )
    except (KeyError, TypeError, ValueError, ValidationError):
        return None


async def stream(
    source: str,
    pairs: list[str],
    on_tick: Callable[[Tick], None],
    stats: Stats,
    stop: asyncio.Event,
    *,
    url: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> None:
    """Watch `pairs` on `source` until `stop` is set, handing each new trade's tick to `on_tick`."""
    venue = VENUES[source]
    if not venue.pairs:
        await _alpaca(venue, pairs, on_tick, stats, stop, url=url, credentials=credentials)
        return
    import ccxt.pro
    from ccxt.base.errors import BaseError

    parsed = [parse_pair(pair) for pair in pairs]
    # ccxt keeps a symbol's trades between two watch calls in a cache of `tradesLimit` (1,000 by default): a
    # burst larger than that before the loop comes back would be dropped there, so it is made far larger. Its
    # "new updates" mode lost the first trades of a burst in the bench; instead each call takes the whole cache
    # and empties it (no await in between), so every trade is handed on exactly once.
    exchange = getattr(ccxt.pro, venue.exchange)({"newUpdates": False, "options": {"tradesLimit": TRADES_CACHE}})
    _skip_bad_frames(exchange, stats)
    if url:
        venue.point_at(exchange, url)
    exchange.set_markets([venue.market(base, quote) for base, quote in parsed])
    symbols = [f"{base}/{quote}" for base, quote in parsed]
    for base, quote in parsed:
        stats.symbols.setdefault(tick_symbol(base, quote), SymbolFigures())
    trades_seen = TradeFilter(consecutive=venue.consecutive_ids)
    try:  # one follower per symbol: ccxt multiplexes their subscriptions on one connection
        await asyncio.gather(
            *(_follow(exchange, venue, symbol, on_tick, stats, stop, trades_seen, BaseError) for symbol in symbols)
        )
    finally:
        await exchange.close()


async def _follow(
    exchange: Any,
    venue: Venue,
    symbol: str,
    on_tick: Callable[[Tick], None],
    stats: Stats,
    stop: asyncio.Event,
    trades_seen: TradeFilter,
    wire_errors: type[Exception],
) -> None:
    """Watch one symbol's trades until `stop`, reconnecting with backoff when the connection fails."""
    failures = 0
    while not stop.is_set():
        watching = asyncio.ensure_future(exchange.watch_trades(symbol))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not watching.done():
            watching.cancel()
            return
        try:
            watching.result()
            cached = exchange.trades.get(symbol)
            trades = list(cached or ())
            if cached is not None:
                cached.clear()
        except (TimeoutError, wire_errors, OSError) as error:
            failures += 1
            stats.reconnects += 1
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (failures - 1)) * random.uniform(0.5, 1)
            if failures == 1:
                logger.warning("%s %s: connection lost (%s); reconnecting", venue.name, symbol, type(error).__name__)
            with contextlib.suppress(asyncio.TimeoutError):  # the stop event ended the wait
                await asyncio.wait_for(stop.wait(), delay)
            continue
        if failures:
            logger.warning("%s %s: connected again after %d attempt(s)", venue.name, symbol, failures)
            failures = 0
        _hand_on(venue, trades, trades_seen, on_tick, stats)


def _skip_bad_frames(exchange: Any, stats: Stats) -> None:
    """Make every connection of `exchange` skip (and count) a frame it cannot decode or handle.

    ccxt decodes and dispatches frames in its receive loop's callback, where an exception (a frame that is not
    JSON, a field of the wrong type) ends the loop silently: the connection stays open and nothing more
    arrives. Wrapping each client's frame handler keeps one bad frame a bad frame.
    """
    make_client = exchange.client

    def client(url: str) -> Any:
        made = make_client(url)
        if not getattr(made, "tickwatch_guarded", False):
            handle = made.handle_text_or_binary_message

            def guarded(data: Any) -> None:
                try:
                    handle(data)
                except Exception as error:  # whatever a peer sends, the stream goes on
                    stats.malformed += 1
                    logger.warning("skipped a frame that could not be read (%s): %.120r", type(error).__name__, data)

            made.handle_text_or_binary_message = guarded
            made.tickwatch_guarded = True
        return made

    exchange.client = client


def _hand_on(
    venue: Venue, trades: list[dict[str, Any]], trades_seen: TradeFilter, on_tick: Callable[[Tick], None], stats: Stats
) -> None:
    for trade in trades:
        _one(to_tick(venue, trade), str(trade.get("id")), trades_seen, on_tick, stats)


def _one(
    tick: Tick | None, trade_id: str, trades_seen: TradeFilter, on_tick: Callable[[Tick], None], stats: Stats
) -> None:
    if tick is None:
        stats.malformed += 1
        return
    if not trades_seen.accept(tick.symbol, trade_id, stats):
        return
    on_tick(tick)
    figures = stats.symbols.setdefault(tick.symbol, SymbolFigures())
    figures.ticks += 1
    figures.last_price = tick.price
    figures.lag_ms = time.time() * 1000 - tick.timestamp.timestamp() * 1000


def alpaca_tick(trade: dict[str, Any]) -> Tick | None:
    """The tick of an Alpaca trade message (`S` symbol, `p` price, `s` size, `t` time), or None."""
    try:
        at = trade["t"]
        timestamp = at.to_datetime() if hasattr(at, "to_datetime") else at  # msgpack Timestamp, or RFC 3339
        return Tick(symbol=trade["S"], timestamp=timestamp, price=trade["p"], volume=trade.get("s"), source="alpaca")
    except (KeyError, TypeError, ValueError, ValidationError):
        return None


async def _alpaca(
    venue: Venue,
    symbols: list[str],
    on_tick: Callable[[Tick], None],
    stats: Stats,
    stop: asyncio.Event,
    *,
    url: str | None,
    credentials: tuple[str, str] | None,
) -> None:
    """US equities through alpaca-py's StockDataStream (IEX feed), which connects, authenticates, resubscribes
    and reconnects itself; it runs its own event loop, so in a thread of its own, stopped with `stop()`."""
    from alpaca.data.enums import DataFeed
    from alpaca.data.live import StockDataStream

    if credentials is None:
        raise ValueError("alpaca needs ALPACA_API_KEY and ALPACA_API_SECRET (a free Alpaca account's keys)")
    feed = StockDataStream(*credentials, raw_data=True, feed=DataFeed.IEX, url_override=url)
    trades_seen = TradeFilter(consecutive=venue.consecutive_ids)
    for symbol in symbols:
        stats.symbols.setdefault(normalise_symbol(symbol), SymbolFigures())

    async def handle(trade: Any) -> None:  # a dict: the stream gives raw messages (raw_data=True)
        _one(alpaca_tick(trade), str(trade.get("i")), trades_seen, on_tick, stats)

    feed.subscribe_trades(handle, *(normalise_symbol(symbol) for symbol in symbols))
    running = threading.Thread(target=feed.run, name="alpaca", daemon=True)
    running.start()
    try:
        while running.is_alive() and not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        feed.stop()
        await asyncio.to_thread(running.join, 10)
