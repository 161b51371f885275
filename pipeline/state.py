"""Per-symbol window state and per-partition progress in Redis.

Correctness under concurrency comes from the data, not from how many workers run: each Kafka partition's
batches are applied one at a time (a short Redis lock) and in offset order (the partition's `progress`,
the next offset to apply, is committed in the same MULTI as the states it produced). A batch that arrives
early waits for its predecessor; a batch that arrives again only applies the ticks not yet applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
from redis import Redis
from redis.lock import Lock

from pipeline.detection import SymbolState

STATS_KEY = "tickwatch:stats"


def _state_key(symbol: str) -> str:
    return f"tickwatch:state:{symbol}"


def _progress_key(topic: str, partition: int) -> str:
    return f"tickwatch:progress:{topic}:{partition}"


def partition_lock(redis: Redis, topic: str, partition: int) -> Lock:
    """Held while one batch of a partition is applied; expires by itself if its worker dies."""
    return redis.lock(f"tickwatch:lock:{topic}:{partition}", timeout=120, blocking_timeout=5.0)


def progress(redis: Redis, topic: str, partition: int) -> int | None:
    value = redis.get(_progress_key(topic, partition))
    return int(value) if value is not None else None


def load_states(redis: Redis, symbols: list[str]) -> dict[str, SymbolState]:
    raw = redis.mget([_state_key(symbol) for symbol in symbols]) if symbols else []
    return {symbol: SymbolState.from_dict(orjson.loads(data)) if data else SymbolState()
            for symbol, data in zip(symbols, raw, strict=True)}


def commit(
    redis: Redis,
    *,
    topic: str,
    partition: int,
    next_offset: int,
    states: Mapping[str, SymbolState],
    counts: Mapping[str, int],
) -> None:
    """Atomically store the new states, the partition's progress and the running counters."""
    pipe = redis.pipeline(transaction=True)
    if states:
        pipe.mset({_state_key(symbol): orjson.dumps(state.to_dict()) for symbol, state in states.items()})
    pipe.set(_progress_key(topic, partition), next_offset)
    for name, amount in counts.items():
        if amount:
            pipe.hincrby(STATS_KEY, name, amount)
    pipe.execute()


def stats(redis: Redis) -> dict[str, int]:
    return {key.decode(): int(value) for key, value in redis.hgetall(STATS_KEY).items()}


def bump(redis: Redis, counts: Mapping[str, int]) -> None:
    """Add to the running counters outside a batch commit (e.g. the bridge's dead-letter count)."""
    pipe = redis.pipeline(transaction=False)
    for name, amount in counts.items():
        pipe.hincrby(STATS_KEY, name, amount)
    pipe.execute()


def symbols_with_state(redis: Redis) -> Iterable[str]:
    prefix = len(_state_key(""))
    return (key.decode()[prefix:] for key in redis.scan_iter(match=_state_key("*"), count=500))
