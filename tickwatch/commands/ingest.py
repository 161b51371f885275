"""`tickwatch ingest`: live trades from an exchange onto Kafka (or stdout), until stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.ingest.publish import DeliveryError
from pipeline.schema import normalise_symbol
from pipeline.settings import get_settings, reveal

console = Console(stderr=True)
KAFKA_BLOCK_SECONDS = 30  # how long a full send buffer may wait for Kafka before ingest gives up
MAX_BUFFERED = 10_000  # ticks sent but not yet acknowledged by Kafka; beyond this, ingest waits for it


def ingest(
    source: Annotated[str, typer.Argument(help="coinbase, binance (crypto, no key) or alpaca (US stocks, your key)")],
    pairs: Annotated[
        list[str],
        typer.Argument(help="pairs such as BTC-USD ETH/USDT, or stocks such as AAPL (alpaca)"),
    ],
    url: Annotated[
        str | None, typer.Option(help="the venue's websocket endpoint (default: its public one; a local one in tests)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the ticks as JSON lines instead of publishing them")
    ] = False,
) -> None:
    """Publish an exchange's live trades to financial_prices as ticks (key = symbol), until Ctrl-C or SIGTERM.

    Each trade becomes a tick with the exchange's own timestamp, its price, its size as volume and
    "source" naming the venue; symbols are normalised (BTC/USDT -> BTC-USDT). Reconnects with backoff, drops
    trades resent after a reconnect, counts gaps and unreadable frames. If Kafka stops taking ticks for 30 s
    it stops with one line; SIGTERM sends what is buffered first.

    Examples:
      [bold]tickwatch ingest coinbase BTC-USD ETH-USD[/bold]
      [bold]tickwatch ingest binance BTC/USDT --dry-run[/bold]
      [bold]ALPACA_API_KEY=… ALPACA_API_SECRET=… tickwatch ingest alpaca AAPL MSFT[/bold]   (IEX feed)
    """
    from pipeline.ingest.live import Stats
    from pipeline.ingest.venues import VENUES, parse_pair

    if source not in VENUES:
        raise typer.BadParameter(f"unknown source {source!r}; sources: {', '.join(VENUES)}", param_hint="SOURCE")
    venue = VENUES[source]
    for pair in pairs:
        try:
            parse_pair(pair) if venue.pairs else normalise_symbol(pair)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="PAIRS") from None
    settings = get_settings()
    credentials = None
    if not venue.pairs:
        key, secret = reveal(settings.alpaca_api_key), reveal(settings.alpaca_api_secret)
        if not (key and secret):
            console.print("[red]✘ set ALPACA_API_KEY and ALPACA_API_SECRET first (a free Alpaca account's keys)[/red]")
            raise typer.Exit(2)
        credentials = (key, secret)
    stats = Stats()
    sink = _Stdout() if dry_run else _Kafka()
    if not dry_run and settings.metrics_port:
        from prometheus_client import REGISTRY

        from pipeline.ingest.live import StatsCollector
        from pipeline.metrics import serve_process_metrics

        REGISTRY.register(StatsCollector(source, stats))
        port = serve_process_metrics(settings.metrics_port)
        console.print(f"ingest: {source} {' '.join(pairs)}; metrics at http://127.0.0.1:{port}/metrics; Ctrl-C to stop")
    try:
        view = not dry_run and console.is_terminal
        asyncio.run(_run(source, pairs, url, credentials, sink, stats, live_view=view))
    finally:
        sent = sink.close()
    figures = f"{sent:,} ticks {'printed' if dry_run else 'published'}, {stats.reconnects} reconnects, "
    figures += f"{stats.gaps} gaps ({stats.missing} trades missing), {stats.malformed} unreadable frames skipped"
    console.print(f"[green]✔[/green] {figures}", highlight=False)


async def _run(
    source: str,
    pairs: list[str],
    url: str | None,
    credentials: tuple[str, str] | None,
    sink: Any,
    stats: Any,
    *,
    live_view: bool,
) -> None:
    from pipeline.ingest.live import stream

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    streaming = asyncio.ensure_future(stream(source, pairs, sink.send, stats, stop, url=url, credentials=credentials))
    if not live_view:
        await streaming
        return
    with Live(_view(stats), console=console, refresh_per_second=2) as live:
        while not streaming.done():
            await asyncio.wait({streaming}, timeout=0.5)
            live.update(_view(stats))
    streaming.result()


def _view(stats: Any) -> Table:
    elapsed = max(time.monotonic() - stats.started, 1e-9)
    table = Table("symbol", "ticks", "ticks/s", "last", "exchange → Kafka lag", title="tickwatch ingest")
    for symbol, figures in sorted(stats.symbols.items()):
        table.add_row(
            symbol,
            f"{figures.ticks:,}",
            f"{figures.ticks / elapsed:,.1f}",
            f"{figures.last_price:,.2f}" if figures.last_price is not None else "-",
            f"{figures.lag_ms:,.0f} ms" if figures.lag_ms is not None else "-",
        )
    table.caption = (
        f"reconnects {stats.reconnects} · gaps {stats.gaps} ({stats.missing} missing) · "
        f"duplicates dropped {stats.duplicates} · unreadable frames {stats.malformed}"
    )
    return table


class _Stdout:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, tick: Any) -> None:
        sys.stdout.write(tick.to_json().decode() + "\n")
        sys.stdout.flush()
        self.sent += 1

    def close(self) -> int:
        return self.sent


class _Kafka:
    """Ticks onto the ticks topic: a bounded send buffer, then `send` blocks (backpressure: the venue's frames
    wait in the socket), then a clear error; `close` sends what is buffered."""

    def __init__(self) -> None:
        from pipeline.ingest.publish import require_topic
        from pipeline.ingest.topics import make_producer

        self.settings = get_settings()
        self.producer = make_producer(
            self.settings,
            linger_ms=20,
            max_block_ms=KAFKA_BLOCK_SECONDS * 1000,
            bootstrap_timeout_ms=round(self.settings.kafka_connect_timeout_seconds * 1000),
        )
        require_topic(self.settings, self.settings.ticks_topic)
        self.failures: list[Exception] = []
        self.sent = 0
        self.acknowledged = 0

    def send(self, tick: Any) -> None:

        if self.failures:
            raise self.failures[0]
        if self.sent - self.acknowledged >= MAX_BUFFERED:  # backpressure: wait for Kafka, then give up
            self.producer.flush(timeout=KAFKA_BLOCK_SECONDS)
            if self.sent - self.acknowledged >= MAX_BUFFERED:
                waiting = self.sent - self.acknowledged
                raise DeliveryError(f"Kafka took no tick for {KAFKA_BLOCK_SECONDS} s ({waiting:,} ticks waiting)")
        future = self.producer.send(self.settings.ticks_topic, key=tick.symbol.encode(), value=tick.to_json())
        future.add_callback(self._acknowledged)
        future.add_errback(self.failures.append)
        self.sent += 1

    def _acknowledged(self, _: Any) -> None:
        self.acknowledged += 1

    def close(self) -> int:
        self.producer.flush(timeout=KAFKA_BLOCK_SECONDS)
        self.producer.close()
        if self.failures:
            raise self.failures[0]
        return self.sent


def register(app: typer.Typer) -> None:
    app.command()(ingest)
