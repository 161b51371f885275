"""What the bench sections share: a private lane of the stack, the bench market, percentiles and CPU use."""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis

from pipeline.ingest.generator import Scenario, default_symbols
from pipeline.settings import Settings
from tickwatch.fleet import Fleet, discard, isolated, lane_values
from tickwatch.leftovers import RunLog

BENCH_REDIS_DB = 63  # the last of redis-server's 64 databases; tests lease 1..62
BENCH_SYMBOLS = 50


@dataclass
class Lane:
    """A private slice of the stack for one measurement: its own topics, indices, Redis db and processes."""

    settings: Settings
    fleet: Fleet

    @property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)


@contextmanager
def lane(base: Settings, log_dir: Path, name: str, **overrides: str) -> Iterator[Lane]:
    tag = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    run_log = RunLog(base.stack_dir, tag)
    settings, env = isolated(base, tag, BENCH_REDIS_DB, **overrides)
    run_log.uses_lane(lane_values(env))
    current = Lane(settings, Fleet(env, log_dir / tag, run_log=run_log))
    try:
        yield current
    finally:
        current.fleet.stop_all()
        discard(settings)
        run_log.done()


def scenario(count: int) -> Scenario:
    start = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    return Scenario.build(
        symbols=default_symbols(BENCH_SYMBOLS),
        start=start,
        interval_s=1,
        count=count,
        seed=1,
        duration=f"{count // BENCH_SYMBOLS + 1}s",
    )


def cpu_seconds(processes: dict[str, list[int]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each named group of processes and all their descendants.

    Reads Linux's /proc (elsewhere: nothing). On a shared machine this, not wall time, says which component
    a faster pipeline has to take time from.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        pid = int(entry.parent.name)
        parent[pid], used[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)

    def tree(pid: int) -> float:
        return used.get(pid, 0.0) + sum(tree(child) for child in children.get(pid, []))

    return {name: sum(tree(pid) for pid in pids) for name, pids in processes.items() if any(p in used for p in pids)}


def percentile(samples: list[float], pct: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(pct) - 1] if len(samples) > 1 else samples[0]
