"""The exchanges `tickwatch ingest` reads, through ccxt's websocket API (`ccxt.pro`), and how their symbols map.

Why ccxt: one well-kept library speaks both venues' documented public trade streams (Coinbase Exchange's
`matches` channel, Binance's `<symbol>@trade` streams), keeps the connections alive (pings) and parses frames into
one trade shape (id, exchange timestamp, price, amount), so Tickwatch keeps only what is its own: mapping,
de-duplication, gap counting, reconnecting and publishing. cryptofeed would do as well for crypto, but its
feeds are harder to point at a local test server; ccxt takes an endpoint per venue (`--url`).

Markets are given to ccxt from the symbols asked for (no REST call for the market list), so ingest needs only
the websocket endpoint, which is what the tests replace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pipeline.schema import normalise_symbol


@dataclass(frozen=True)
class Venue:
    name: str  # what `tickwatch ingest` calls it, and each tick's `source`
    exchange: str  # the ccxt.pro class
    ws_path: tuple[str, ...]  # where ccxt keeps its websocket endpoint in `urls["api"]`
    separator: str  # in the venue's own market id: BTC-USD (Coinbase), BTCUSDT (Binance)
    consecutive_ids: bool = True  # trade ids count up by one per pair, so a jump is a gap
    pairs: bool = True  # crypto pairs (BASE-QUOTE), or stock symbols (Alpaca)

    def market_id(self, base: str, quote: str) -> str:
        return f"{base}{self.separator}{quote}"

    def market(self, base: str, quote: str) -> dict[str, Any]:
        """The ccxt market of a pair (the fields ccxt's trade parsing reads)."""
        return {
            "id": self.market_id(base, quote),
            "lowercaseId": self.market_id(base, quote).lower(),
            "symbol": f"{base}/{quote}",
            "base": base,
            "quote": quote,
            "baseId": base,
            "quoteId": quote,
            "type": "spot",
            "spot": True,
            "margin": False,
            "swap": False,
            "future": False,
            "option": False,
            "contract": False,
            "linear": None,
            "inverse": None,
            "active": True,
            "precision": {},
            "limits": {},
        }

    def point_at(self, exchange: Any, url: str) -> None:
        """Make `exchange` connect to `url` instead of the venue (a local server in the tests)."""
        where = exchange.urls["api"]
        for key in self.ws_path[:-1]:
            where = where[key]
        where[self.ws_path[-1]] = url


VENUES = {
    "coinbase": Venue("coinbase", "coinbaseexchange", ("ws",), "-"),
    "binance": Venue("binance", "binance", ("ws", "spot"), ""),
    # US equities through alpaca-py's market data stream (IEX feed; its trade ids are not consecutive per symbol)
    "alpaca": Venue("alpaca", "", (), "", consecutive_ids=False, pairs=False),
}
_PAIR = re.compile(r"^([A-Z0-9]{1,10})[-/]([A-Z0-9]{1,10})$")


def parse_pair(text: str) -> tuple[str, str]:
    """`BTC-USD`, `btc/usdt` -> ("BTC", "USD"); ValueError naming the expected form otherwise."""
    found = _PAIR.match(text.strip().upper())
    if found is None:
        raise ValueError(f"{text!r} is not a pair: write BASE-QUOTE, e.g. BTC-USD or ETH/USDT")
    return found.group(1), found.group(2)


def tick_symbol(base: str, quote: str) -> str:
    """The symbol ticks carry: BTC/USDT -> BTC-USDT, whatever the venue writes."""
    return normalise_symbol(f"{base}-{quote}")
