"""Run the pipeline's processes (workers, bridge) as real subprocesses, and measure how far behind they are.

Shared by the demo, the bench and the end-to-end tests so all three exercise the pipeline the way a user
runs it: `tickwatch worker` and `tickwatch bridge`, configured only through the environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition
from redis import Redis

from pipeline import store
from pipeline.detect import state
from pipeline.ingest.topics import ensure_topics
from pipeline.settings import Settings
from tickwatch.leftovers import RunLog, settings_of


def env_for(values: dict[str, str]) -> dict[str, str]:
    """This process's environment without any Tickwatch or Slack settings, plus `values`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TICKWATCH_", "SLACK_"))}
    return {**env, **values}


def isolated(base: Settings, tag: str, redis_db: int, **overrides: str) -> tuple[Settings, dict[str, str]]:
    """A private slice of the stack named `tag`: its own topics, index prefix, consumer group and Redis
    database (also its Celery broker), created empty. Returns its settings and the env that selects it."""
    host, port = base.redis_host_port
    values = {
        "TICKWATCH_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
        "TICKWATCH_ES_URL": base.es_url,
        "TICKWATCH_REDIS_URL": f"redis://{host}:{port}/{redis_db}",
        "TICKWATCH_TICKS_TOPIC": f"{tag}.financial_prices",
        "TICKWATCH_DLQ_TOPIC": f"{tag}.financial_prices.dlq",
        "TICKWATCH_ALERTS_TOPIC": f"{tag}.alerts",
        "TICKWATCH_CONSUMER_GROUP": tag,
        "TICKWATCH_INDEX_PREFIX": tag,
        "TICKWATCH_METRICS_PORT": "0",
        **overrides,
    }
    settings = settings_of(values)
    Redis.from_url(settings.redis_url).flushdb()
    ensure_topics(settings)
    store.ensure_templates(store.connect(settings), store.Indices(settings.index_prefix))
    return settings, env_for(values)


def lane_values(env: dict[str, str]) -> dict[str, str]:
    """The TICKWATCH_* values of an `isolated` env: what selects its lane."""
    return {key: value for key, value in env.items() if key.startswith("TICKWATCH_")}


def discard_values(values: dict[str, str]) -> None:
    """`discard` the lane that `values` (from `lane_values`) select."""
    discard(settings_of(values))


def discard(settings: Settings) -> None:
    """Remove what `isolated` made: indices (by name: ES refuses wildcard deletes), topics, Redis data."""
    es = store.connect(settings)
    for index in es.indices.get(index=f"{settings.index_prefix}-*"):
        es.indices.delete(index=index)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.delete_topics([settings.ticks_topic, settings.dlq_topic, settings.alerts_topic])
    finally:
        admin.close()
    Redis.from_url(settings.redis_url).flushdb()


def free_port() -> int:
    """A TCP port free on loopback right now, for a server the fleet starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """An HTTP server the fleet started (`tickwatch api`, `tickwatch bot`)."""

    name: str
    url: str
    proc: subprocess.Popen
    log: Path


@dataclass
class Fleet:
    env: dict[str, str]
    log_dir: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    run_log: RunLog | None = None  # where a bench or demo writes down what it starts (tickwatch.leftovers)

    def start(self, *args: str, name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tickwatch", *args],
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        if self.run_log is not None:
            self.run_log.started(proc.pid)
        return proc

    def worker(self, concurrency: int = 2, *options: str, loglevel: str = "WARNING") -> subprocess.Popen:
        return self.start(
            "worker", "-c", str(concurrency), "--loglevel", loglevel, *options, name=f"worker-{len(self.procs)}"
        )

    def split_workers(self, ticks_workers: int = 1, concurrency: int = 2, alert_threads: int = 4) -> None:
        """Tick batches on prefork workers, deliveries on a threaded worker of their own (lowest latency)."""
        for _ in range(ticks_workers):
            self.worker(concurrency, "--queues", self.env.get("TICKWATCH_CELERY_QUEUE", "ticks"))
        self.worker(alert_threads, "--queues", self.env.get("TICKWATCH_ALERTS_QUEUE", "alerts"), "--pool", "threads")

    def bridge(self, **extra_env: str) -> subprocess.Popen:
        return self.start("bridge", "--loglevel", "WARNING", name=f"bridge-{len(self.procs)}", extra_env=extra_env)

    def serve(self, command: str, *options: str) -> Server:
        """Start `tickwatch <command> --port <free port> <options>`; `wait_ready` before talking to it."""
        port = free_port()
        proc = self.start(command, "--port", str(port), *options, name=command)
        return Server(command, f"http://127.0.0.1:{port}", proc, self.log_dir / f"{command}.log")

    @staticmethod
    def wait_ready(server: Server, timeout: float = 60) -> None:
        """Until GET /healthz answers 200; RuntimeError naming the log if the process exits or never answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"tickwatch {server.name} exited with {server.proc.returncode}; see {server.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"tickwatch {server.name} did not answer {server.url}/healthz in {timeout:.0f}s; see {server.log}"
        )

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        for proc in reversed(self.procs):  # the bridge (started last) stops before the workers
            self.stop(proc, sig)


def end_offsets(settings: Settings) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(settings.ticks_topic) or set()
        ends = consumer.end_offsets([TopicPartition(settings.ticks_topic, p) for p in parts])
    finally:
        consumer.close()
    return {tp.partition: end for tp, end in ends.items()}


def pending(settings: Settings, redis: Redis | None = None) -> int:
    """Records on the ticks topic that the workers have not applied yet (the pipeline's lag)."""
    redis = redis or Redis.from_url(settings.redis_url)
    behind = 0
    for partition, end in end_offsets(settings).items():
        done = state.progress(redis, settings.ticks_topic, partition) or 0
        behind += max(0, end - done)
    return behind
