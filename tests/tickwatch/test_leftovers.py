"""A bench stopped by a signal ends what it started; one killed -9 leaves what the next run clears (real
`tickwatch bench` processes, workers, Kafka topics, Elasticsearch indices and Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient

from pipeline.settings import Settings
from tests.conftest import wait_for
from tickwatch import leftovers
from tickwatch.fleet import discard_values


def start_bench(settings: Settings) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickwatch", "bench", "--only", "storm"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc, settings.stack_dir / "runs" / f"{proc.pid}.json"


def running_lane(run_file: Path) -> dict[str, Any]:
    """The bench's entry once its worker runs: {"pids": [...], "lane": {...}}."""

    def entry() -> dict[str, Any] | None:
        try:
            entries = json.loads(run_file.read_text())
        except (OSError, ValueError):
            return None
        return next((e for e in entries.values() if e.get("pids") and e.get("lane")), None)

    return wait_for(entry, timeout=60, what="the bench's worker")


def alive(pid: int) -> bool:
    try:
        return b"tickwatch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def topics(settings: Settings) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_sigterm_ends_the_benchs_workers_and_removes_its_lane(real_stack: Settings):
    proc, run_file = start_bench(real_stack)
    entry = running_lane(run_file)
    os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` or a CI runner would
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in entry["pids"]), "the bench's worker outlived it"
    assert entry["lane"]["TICKWATCH_TICKS_TOPIC"] not in topics(real_stack)
    assert not run_file.exists()


def test_what_a_killed_bench_left_is_cleared_by_the_next_run(real_stack: Settings):
    proc, run_file = start_bench(real_stack)
    entry = running_lane(run_file)
    proc.kill()  # -9: no handler runs, the worker (its own session) is orphaned
    proc.wait(timeout=10)
    assert all(alive(pid) for pid in entry["pids"])
    assert entry["lane"]["TICKWATCH_TICKS_TOPIC"] in topics(real_stack)

    cleared = leftovers.clear(real_stack.stack_dir, discard_values)
    assert any("ended 1 leftover process(es), removed its lane" in line for line in cleared), cleared
    wait_for(lambda: not any(alive(pid) for pid in entry["pids"]), timeout=10, what="the orphaned worker to end")
    assert entry["lane"]["TICKWATCH_TICKS_TOPIC"] not in topics(real_stack)
    assert not run_file.exists()
    assert leftovers.clear(real_stack.stack_dir, discard_values) == []  # nothing twice
