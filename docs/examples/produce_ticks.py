"""A minimal producer of Tickwatch ticks for your own feed (see docs/ingest.md, "The producer contract").

    python docs/examples/produce_ticks.py --bootstrap 127.0.0.1:9092 --topic financial_prices

It publishes three ticks of ACME: JSON values keyed by the symbol, event time in UTC, `source` naming the feed.
Only kafka-python is needed.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from kafka import KafkaProducer


def tick(symbol: str, price: float, volume: float) -> dict:
    return {
        "symbol": symbol,  # also the key: one symbol stays on one partition, in order
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),  # event time
        "price": price,
        "volume": volume,
        "source": "my-feed",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="financial_prices")
    args = parser.parse_args()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    for price in (101.5, 101.7, 101.4):
        value = tick("ACME", price, 100)
        producer.send(args.topic, key=value["symbol"].encode(), value=json.dumps(value).encode()).get(timeout=10)
    producer.close()
    print("sent 3 ticks of ACME")


if __name__ == "__main__":
    main()
