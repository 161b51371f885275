"""Local websocket servers that speak exchanges' public trade protocols, for testing `tickwatch ingest` offline.

Frames follow the venues' public API documentation:
- Coinbase Exchange (wss://ws-feed.exchange.coinbase.com): the client sends
  `{"type": "subscribe", "product_ids": [...], "channels": ["matches"]}`; the server answers
  `{"type": "subscriptions", ...}`, then `match` messages (trade_id, sequence, time, product_id, size, price,
  side), `heartbeat`s and `error`s.
- Binance spot (wss://stream.binance.com:9443/ws): the client sends
  `{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": N}`; the server answers `{"result": null, "id": N}`,
  then `trade` events (`e`, `E`, `s`, `t` trade id, `p`, `q`, `T` trade time, `m`).

- Alpaca market data (wss://stream.data.alpaca.markets/v2/iex), msgpack frames, each a list of messages: the
  server greets `[{"T": "success", "msg": "connected"}]`, the client sends `{"action": "auth", "key", "secret"}`
  (answered `authenticated`) and `{"action": "subscribe", "trades": [...]}` (answered `subscription`), then
  trades `{"T": "t", "S", "i", "x", "p", "s", "t", "c", "z"}`.

A venue plays `sessions`, one per connection: the frames to send once the client subscribed (with `Pause`s
between them), and whether to drop the connection after them (`Drop`). The last session's connection stays
open. It records every subscription, so a test sees the client resubscribe.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack
from aiohttp import WSMsgType, web


class Drop:
    """In a session: close the connection here (as a venue restarting or a network cut would)."""


DROP = Drop()


@dataclass(frozen=True)
class Pause:
    """In a session: wait this long before the next frame (trades that keep coming while something is down)."""

    seconds: float


def coinbase_match(product: str, trade_id: int, price: float, size: float, at: datetime) -> dict[str, Any]:
    return {
        "type": "match",
        "trade_id": trade_id,
        "sequence": 1_000_000 + trade_id,
        "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
        "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "product_id": product,
        "size": f"{size}",
        "price": f"{price}",
        "side": "buy",
    }


def binance_trade(market: str, trade_id: int, price: float, quantity: float, at: datetime) -> dict[str, Any]:
    ms = int(at.timestamp() * 1000)
    return {
        "e": "trade",
        "E": ms + 3,
        "s": market,
        "t": trade_id,
        "p": f"{price}",
        "q": f"{quantity}",
        "T": ms,
        "m": True,
        "M": True,
    }


def alpaca_trade(symbol: str, trade_id: int, price: float, size: float, at: datetime) -> dict[str, Any]:
    return {
        "T": "t",
        "S": symbol,
        "i": trade_id,
        "x": "V",
        "p": price,
        "s": size,
        "t": msgpack.Timestamp.from_datetime(at),
        "c": ["@"],
        "z": "C",
    }


def coinbase_heartbeat(product: str) -> dict[str, Any]:
    return {
        "type": "heartbeat",
        "sequence": 1,
        "last_trade_id": 0,
        "product_id": product,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


@dataclass
class FakeVenue:
    """One venue on loopback; `url` is what `tickwatch ingest --url` takes."""

    protocol: str  # "coinbase" or "binance"
    sessions: list[list[Any]]
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    pace: float = 0.01  # seconds between frames; 0: as fast as the connection takes them (the bench)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._connections = 0
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeVenue:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._connection)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        path = {"binance": "/ws", "alpaca": "/v2/iex"}.get(self.protocol, "/")
        self.url = f"ws://127.0.0.1:{port}{path}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        session = self.sessions[min(self._connections, len(self.sessions) - 1)]
        self._connections += 1
        if self.protocol == "alpaca":
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                asked = msgpack.unpackb(message.data)
            elif message.type == WSMsgType.TEXT:
                asked = json.loads(message.data)
            else:
                continue
            if asked.get("action") == "auth":
                await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                continue
            self.subscriptions.append(asked)
            await self._send(ws, self._ack(asked))
            for frame in session:
                if isinstance(frame, Drop):
                    await ws.close()
                    return ws
                if isinstance(frame, Pause):
                    await asyncio.sleep(frame.seconds)
                    continue
                await self._send(ws, frame)
                if self.pace:
                    await asyncio.sleep(self.pace)
        return ws

    async def _send(self, ws: web.WebSocketResponse, frame: Any) -> None:
        if self.protocol == "alpaca":
            await ws.send_bytes(frame if isinstance(frame, bytes) else msgpack.packb([frame]))
        else:
            await ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    def _ack(self, asked: dict[str, Any]) -> dict[str, Any]:
        if self.protocol == "alpaca":
            return {"T": "subscription", "trades": asked.get("trades", []), "quotes": [], "bars": []}
        if self.protocol == "binance":
            return {"result": None, "id": asked.get("id")}
        return {"type": "subscriptions", "channels": [{"name": "matches", "product_ids": asked.get("product_ids")}]}
