"""Per-symbol window state and per-partition progress in Redis.

Correctness under concurrency comes from the data, not from how many workers run: each Kafka partition's
offset ranges are applied one at a time (a short Redis lock) and in offset order (the partition's
`progress`, the next offset to apply, is committed in the same MULTI as the states it produced). A batch that arrives
early waits for its predecessor; a batch that arrives again only applies the ticks not yet applied.
Progress only moves forward.
"""

from __future__ import annotations

import math
import struct
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import orjson
from redis import Redis

from pipeline import keys
from pipeline.detect.market import Beta, Track
from pipeline.detect.rules import Baseline, Pending
from pipeline.detect.window import Episode, SymbolState
from pipeline.metrics import Recorder
from pipeline.schema import PartitionRange


@contextmanager
def partition_locks(redis: Redis, parts: Iterable[PartitionRange]) -> Iterator[None]:
    """Hold the locks of a batch's partitions (taken in a fixed order, so two batches never deadlock).

    They expire by themselves if their worker dies.
    """
    with ExitStack() as stack:
        for topic, partition in sorted({(part["topic"], part["partition"]) for part in parts}):
            # Longer than the slowest apply (ES client: 3 retries of 30 s), so a commit never outlives its lock.
            stack.enter_context(redis.lock(keys.partition_lock(topic, partition), timeout=300, blocking_timeout=30.0))
        yield


def progress_of(redis: Redis, parts: list[PartitionRange]) -> dict[int, int | None]:
    """The next offset to apply for each partition of a batch (None: nothing applied yet)."""
    values = redis.mget([keys.partition_progress(part["topic"], part["partition"]) for part in parts])
    return {
        part["partition"]: int(value) if value is not None else None for part, value in zip(parts, values, strict=True)
    }


def start_partition(redis: Redis, topic: str, partition: int, offset: int) -> None:
    """Record where a partition starts if nothing was applied for it yet (a no-op otherwise)."""
    redis.set(keys.partition_progress(topic, partition), offset, nx=True)


def skip_to(redis: Redis, topic: str, partition: int, offset: int) -> None:
    """Start applying a partition at `offset` (a replay skipping what others left unread); never moves back."""
    key = keys.partition_progress(topic, partition)
    current = redis.get(key)
    if current is None or int(current) < offset:
        redis.set(key, offset)


def stalled_seconds(redis: Redis, parts: list[PartitionRange]) -> float:
    """How long the least recently advanced partition of a batch has not moved (inf if it never did)."""
    moved = redis.hmget(keys.PROGRESS_AT, [f"{part['topic']}:{part['partition']}" for part in parts])
    return max((time.time() - float(value) if value else math.inf) for value in moved)


def progress(redis: Redis, topic: str, partition: int) -> int | None:
    value = redis.get(keys.partition_progress(topic, partition))
    return int(value) if value is not None else None


def load_states(redis: Redis, symbols: list[str]) -> dict[str, SymbolState]:
    raw = redis.mget([keys.symbol_state(symbol) for symbol in symbols]) if symbols else []
    return {
        symbol: decode(data) if isinstance(data, bytes) and data else SymbolState()
        for symbol, data in zip(symbols, raw, strict=True)
    }


_HEADER = struct.Struct("<II")  # length of the JSON part, number of ticks in the window


def encode(state: SymbolState) -> bytes:
    """The window as packed arrays (it is most of the bytes, rewritten every batch), the rest as JSON."""
    meta = orjson.dumps(
        {
            "watermark": state.watermark,
            "settled": _episodes_out(state.settled),
            "evaluated_upto": state.evaluated_upto,
            "live": _episodes_out(state.live),
            "changes": [[ts, name, *_episode_out(ep)] for ts, name, ep in state.changes],
            "known": state.known,
            "suspect": list(state.suspect.items()),
            "baseline": state.baseline.to_list(),
            "trusted": state.trusted,
            "beta": state.beta.to_list(),
            "folded": [[window, baseline.to_list()] for window, baseline in state.folded.items()],
        }
    )
    return b"".join(
        (
            _HEADER.pack(len(meta), len(state.ts)),
            meta,
            array("q", state.ts).tobytes(),
            array("d", state.prices).tobytes(),
            array("d", state.volumes).tobytes(),
        )
    )


def decode(raw: bytes) -> SymbolState:
    meta_len, count = _HEADER.unpack_from(raw)
    offset = _HEADER.size + meta_len
    meta = orjson.loads(raw[_HEADER.size : offset])
    columns: list[list[Any]] = []  # event times (q), prices and volumes (d)
    for code in "qdd":
        column = array(code)
        column.frombytes(raw[offset : offset + count * column.itemsize])
        offset += count * column.itemsize
        columns.append(column.tolist())
    ts, prices, volumes = columns
    return SymbolState(
        ts=ts,
        prices=prices,
        volumes=volumes,
        watermark=meta["watermark"],
        settled=_episodes_in(meta["settled"]),
        evaluated_upto=meta["evaluated_upto"],
        live=_episodes_in(meta["live"]),
        changes=[(ts, name, _episode(*episode)) for ts, name, *episode in meta["changes"]],
        known=meta["known"],
        suspect=dict(meta.get("suspect", ())),
        baseline=Baseline.from_list(meta.get("baseline")),
        trusted=meta.get("trusted", False),
        beta=Beta.from_list(meta.get("beta")),
        folded={int(window): Baseline.from_list(values) for window, values in meta.get("folded", ())},
    )


def load_tracks(redis: Redis, benchmarks: Iterable[str]) -> dict[str, Track]:
    """The benchmarks' recent prices (empty when none were kept yet)."""
    names = sorted(benchmarks)
    raw = redis.mget([keys.benchmark_track(name) for name in names]) if names else []
    return {name: Track.decode(data) for name, data in zip(names, raw, strict=True)}


def _episodes_out(episodes: dict[str, Episode]) -> dict[str, Any]:
    return {name: _episode_out(ep) for name, ep in episodes.items()}


def _episode_out(episode: Episode) -> list[Any]:
    return [episode.anomaly, episode.last_hold, list(episode.pending) if episode.pending else None]


def _episodes_in(data: dict[str, Any]) -> dict[str, Episode]:
    return {name: _episode(*values) for name, values in data.items()}


def _episode(anomaly: dict[str, Any] | None, last_hold: int, pending: list[Any] | None = None) -> Episode:
    """An episode as stored (states written before confirmation existed have no `pending`)."""
    return Episode(anomaly, last_hold, Pending(*pending) if pending else None)


def commit(
    redis: Redis,
    *,
    progress: Mapping[tuple[str, int], int],
    states: Mapping[str, SymbolState],
    counts: Mapping[str, int],
    figures: Recorder | None = None,
    feeds: Mapping[str, bytes] | None = None,
    tracks: Mapping[str, Track] | None = None,
) -> None:
    """Atomically store the new states, the partitions' progress, the running counters, `figures`, the
    symbols' live `feeds` (pipeline.feeds) and the benchmarks' `tracks` this batch moved."""
    pipe = redis.pipeline(transaction=True)
    if tracks:
        pipe.mset({keys.benchmark_track(name): track.encode() for name, track in tracks.items()})
    if feeds:
        pipe.hset(keys.FEEDS, mapping={symbol: raw for symbol, raw in feeds.items()})
    if states:
        pipe.mset({keys.symbol_state(symbol): encode(state) for symbol, state in states.items()})
    pipe.mset({keys.partition_progress(topic, partition): offset for (topic, partition), offset in progress.items()})
    pipe.hset(keys.PROGRESS_AT, mapping={f"{topic}:{partition}": time.time() for topic, partition in progress})
    for name, amount in counts.items():
        if amount:
            pipe.hincrby(keys.STATS, name, amount)
    if figures is not None:
        figures.add_to(pipe)
    pipe.execute()


def stats(redis: Redis) -> dict[str, int]:
    return {keys.text(key): int(value) for key, value in redis.hgetall(keys.STATS).items()}


def bump(redis: Redis, counts: Mapping[str, int], figures: Recorder | None = None) -> None:
    """Add to the running counters outside a batch commit (e.g. the bridge's dead-letter count)."""
    pipe = redis.pipeline(transaction=False)
    for name, amount in counts.items():
        pipe.hincrby(keys.STATS, name, amount)
    if figures is not None:
        figures.add_to(pipe)
    pipe.execute()
