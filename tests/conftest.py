"""Fixtures for end-to-end tests over the real local stack (Kafka, Elasticsearch, Redis, Celery workers).

Each test gets its own namespace: its own topics, index prefix, consumer group and Redis database (which is
also its Celery broker), so tests never see each other's data. Workers and the bridge run as real
subprocesses of the `tickwatch` command, exactly as a user runs them.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer
from redis import Redis

from pipeline import store
from pipeline.detect import state
from pipeline.settings import Settings
from stack.services import Kafka
from stack.services import Redis as RedisServer
from tickwatch.fleet import Fleet, discard, end_offsets, isolated, pending

T = TypeVar("T")
REDIS_DATABASES = 64  # `tickwatch stack up` starts redis-server with this many; db 0 is the demo's, 63 the bench's
_LEASE = "tickwatch:test-db-lease:{}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the real stack (directly or through a fixture) is `e2e`: `-m "not e2e"` runs the rest."""
    for item in items:
        if "real_stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


def wait_for(check: Callable[[], T], *, timeout: float = 60, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def real_stack() -> Settings:
    """The local stack, started if it is not running (`tickwatch stack up` does the same)."""
    from stack import StackError, all_services

    settings = Settings()
    try:
        for service in all_services(settings):
            service.up()
    except StackError as error:
        pytest.fail(f"the local stack could not start: {error}")
    return settings


def lease_database(settings: Settings) -> int:
    """An empty Redis database no other test (in this or a concurrent pytest run) is using, until
    `release_database`."""
    lessor = Redis.from_url(settings.redis_url)
    for db in range(1, REDIS_DATABASES - 1):
        if lessor.set(_LEASE.format(db), os.getpid(), nx=True, ex=3600):
            Redis.from_url(redis_url_for(settings, db)).flushdb()  # whatever a test that failed left behind
            return db
    pytest.fail("every test Redis database is leased: stale leases expire after an hour")


def release_database(settings: Settings, db: int) -> None:
    Redis.from_url(settings.redis_url).delete(_LEASE.format(db))


def redis_url_for(settings: Settings, db: int) -> str:
    host, port = settings.redis_host_port
    return f"redis://{host}:{port}/{db}"


@pytest.fixture
def fresh_redis(real_stack: Settings) -> Iterator[Redis]:
    """An empty Redis database of the real server, leased for this test."""
    db = lease_database(real_stack)
    client = Redis.from_url(redis_url_for(real_stack, db))
    client.flushdb()
    yield client
    client.flushdb()
    release_database(real_stack, db)


@dataclass
class Namespace(Fleet):
    """One test's slice of the stack, and the worker/bridge processes it started."""

    settings: Settings = field(default_factory=Settings)

    @property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)

    @property
    def es(self) -> Elasticsearch:
        return store.connect(self.settings)

    @property
    def indices(self) -> store.Indices:
        return store.Indices(self.settings.index_prefix)

    def ticks_indexed(self) -> int:
        self.es.indices.refresh(index=self.indices.ticks, ignore_unavailable=True)
        return self.es.count(index=self.indices.ticks, ignore_unavailable=True)["count"]

    def applied(self) -> bool:
        """Every record on the ticks topic has been applied by the workers."""
        return pending(self.settings, self.redis) == 0

    def diagnosis(self) -> str:
        """Where the pipeline stands, printed when a test fails: per partition end offset vs progress."""
        parts = {
            p: (end, state.progress(self.redis, self.settings.ticks_topic, p))
            for p, end in sorted(end_offsets(self.settings).items())
        }
        queues = {q: self.redis.llen(q) for q in (self.settings.celery_queue, self.settings.alerts_queue)}
        return f"partitions (end, progress) {parts}; queues {queues}; stats {state.stats(self.redis)}"

    def anomalies(self) -> dict[str, dict[str, Any]]:
        self.es.indices.refresh(index=self.indices.anomalies)
        hits = self.es.search(index=self.indices.anomalies, size=1000, query={"match_all": {}})["hits"]["hits"]
        return {hit["_id"]: hit["_source"] for hit in hits}

    def topic_messages(self, topic: str, expect: int, timeout: float = 30) -> list:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            group_id=f"reader-{uuid.uuid4().hex[:6]}",
        )
        found: list = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and len(found) < expect:
                found += list(consumer)
            # read a little longer to catch anything beyond what was expected
            found += list(consumer)
        finally:
            consumer.close()
        return found


@pytest.fixture
def make_namespace(real_stack: Settings, tmp_path: Path, request) -> Iterator[Callable[[], Namespace]]:
    made: list[tuple[Namespace, int]] = []

    def make() -> Namespace:
        db = lease_database(real_stack)
        tag = f"tw-t{uuid.uuid4().hex[:8]}"
        settings, env = isolated(real_stack, tag, db)
        ns = Namespace(env, tmp_path / tag, settings=settings)
        made.append((ns, db))
        return ns

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for ns, db in made:
        ns.stop_all(signal.SIGKILL)
        if failed:
            print(f"----- {ns.settings.index_prefix}: {ns.diagnosis()}")
            for log in sorted(ns.log_dir.glob("*.log")):
                print(f"----- {ns.settings.index_prefix}/{log.name}\n{log.read_text(errors='replace')[-4000:]}")
        discard(ns.settings)
        release_database(real_stack, db)


@pytest.fixture
def namespace(make_namespace: Callable[[], Namespace]) -> Namespace:
    return make_namespace()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def free_pair() -> int:
    """A port P with P + 1 free too (Kafka's controller listens on P + 1)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture
def engines(real_stack: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Kafka, RedisServer]]:
    """Settings of a private Kafka and Redis (not started yet) plus the shared Elasticsearch."""
    tag = f"tw-o{uuid.uuid4().hex[:6]}"
    kafka_port, redis_port = free_pair(), free_pair()
    settings = real_stack.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{kafka_port}",
            "redis_url": f"redis://127.0.0.1:{redis_port}/0",
            "stack_dir": tmp_path / "engines",
            "kafka_heap": "256m",
            "index_prefix": tag,
            "metrics_port": 0,
        }
    )
    kafka, redis = Kafka(settings), RedisServer(settings)
    yield settings, kafka, redis
    for service in (kafka, redis):
        service.down()
    es = store.connect(settings)
    for index in es.indices.get(index=f"{tag}-*"):
        es.indices.delete(index=index)
