"""`tickwatch bench --only ingest`: how fast one `tickwatch ingest` process takes trades from a venue to Kafka.

The venue is the local Coinbase replay server (stack.fake_venues) sending prepared `match` frames as fast as the
connection takes them; the ingest process is the real command, publishing into a private topic. Measured from
its first tick on Kafka to its last, with its CPU time per message (ccxt's frame parsing is most of it).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from pipeline.settings import Settings
from stack.fake_venues import FakeVenue, coinbase_match
from tickwatch.bench.common import cpu_seconds, lane
from tickwatch.fleet import end_offsets


def ingest_figures(base: Settings, console: Console, *, trades: int = 100_000) -> dict[str, float]:
    start = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
    frames = [
        json.dumps(coinbase_match("BTC-USD", n, 97_000 + n % 100, 0.01, start + timedelta(milliseconds=n)))
        for n in range(1, trades + 1)
    ]
    with lane(base, base.stack_dir / "logs", "ingest") as current:
        settings = current.settings
        with FakeVenue("coinbase", [frames], pace=0) as venue:
            proc = current.fleet.start("ingest", "coinbase", "BTC-USD", "--url", venue.url, name="ingest")
            first = last = None
            on_kafka, moved = 0, time.monotonic()
            while time.monotonic() - moved < 30:  # until all arrived, or nothing more for 30 s
                now_on = sum(end_offsets(settings).values())
                if now_on != on_kafka:
                    on_kafka, moved = now_on, time.monotonic()
                if on_kafka and first is None:
                    first, at_first = time.monotonic(), on_kafka
                if on_kafka >= trades:
                    break
                time.sleep(0.05)
            last = moved
            cpu = cpu_seconds({"ingest": [proc.pid]})["ingest"]
            current.fleet.stop(proc)
    if first is None:
        raise RuntimeError(f"ingest published nothing; see {current.fleet.log_dir}")
    rate = (on_kafka - at_first) / max(last - first, 1e-9)
    figures = {"messages_per_s": rate, "cpu_us_per_message": cpu / max(on_kafka, 1) * 1e6, "lost": trades - on_kafka}
    table = Table(
        "measure", "figure", title=f"tickwatch ingest: {trades:,} Coinbase matches from the local replay server"
    )
    table.add_row("venue -> Kafka, one process", f"{rate:,.0f} messages/s")
    table.add_row("trades that did not reach Kafka", f"{figures['lost']:,}")
    table.add_row(
        "CPU per message (parse, map, de-duplicate, publish; start-up included)",
        f"{figures['cpu_us_per_message']:.0f} µs",
    )
    console.print(table)
    return figures
