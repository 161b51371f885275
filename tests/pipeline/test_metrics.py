"""Metrics: the recording side as pure logic, and the fleet's figures through the API's /metrics after real
batches applied by real workers (and two bridges on one host, both running)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from kafka.admin import KafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from api.app import create_app
from pipeline import keys, metrics
from pipeline.detect import state
from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from tests.conftest import Namespace, wait_for


def scrape(client: TestClient) -> dict[str, dict[tuple, float]]:
    """Sample name -> {sorted labels: value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_a_recorder_checks_names_and_labels():
    recorder = metrics.Recorder()
    with pytest.raises(ValueError, match="deliveries"):
        recorder.count("deliveries", channel="slack")  # outcome missing
    with pytest.raises(ValueError, match="nope"):
        recorder.observe("nope", 1.0)


def test_histograms_come_back_cumulative_with_sum_and_count(fresh_redis: Redis):
    recorder = metrics.Recorder()
    for seconds in (0.003, 0.02, 0.02, 7.0, 99.0):
        recorder.observe("batch_latency_seconds", seconds)
    recorder.count("deliveries", 2, channel="slack", outcome="sent")
    recorder.set("bridge_lag", 42, partition="3")
    state.bump(fresh_redis, {"consumed": 5}, recorder)
    state.bump(fresh_redis, {"consumed": 1}, recorder)  # a second process adds to the same figures

    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.RedisCollector(fresh_redis, keys.STATS))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    bucket = "tickwatch_batch_latency_seconds_bucket"
    assert samples[(bucket, (("le", "0.005"),))] == 2
    assert samples[(bucket, (("le", "0.025"),))] == 6
    assert samples[(bucket, (("le", "5.0"),))] == 6
    assert samples[(bucket, (("le", "10.0"),))] == 8
    assert samples[(bucket, (("le", "+Inf"),))] == 10
    assert samples[("tickwatch_batch_latency_seconds_count", ())] == 10
    assert samples[("tickwatch_batch_latency_seconds_sum", ())] == pytest.approx(2 * (0.003 + 0.02 + 0.02 + 7.0 + 99.0))
    assert samples[("tickwatch_deliveries_total", (("channel", "slack"), ("outcome", "sent")))] == 4
    assert samples[("tickwatch_bridge_lag", (("partition", "3"),))] == 42
    assert samples[("tickwatch_ticks_consumed_total", ())] == 6


def test_metrics_show_the_workers_figures_after_real_batches(namespace: Namespace):
    ns = namespace
    market = Scenario.build(
        symbols=["AAPL", "TSLA"],
        start=datetime(2026, 11, 23, 14, tzinfo=UTC),
        interval_s=1,
        duration="10m",
        seed=3,
        events=["drop:TSLA:8%:60s@5m"],
    )
    ns.worker(concurrency=1)
    ns.bridge()
    sent = publish(market.ticks(), ns.settings, progress=False)
    wait_for(ns.applied, timeout=120, what="all ticks applied")
    client = TestClient(create_app(ns.settings))
    samples = wait_for(
        lambda: (s := scrape(client))["tickwatch_alerts_total"][()] >= 1 and s, timeout=30, what="the alert counted"
    )
    assert samples["tickwatch_ticks_consumed_total"][()] == sent
    assert samples["tickwatch_ticks_applied_total"][()] == sent
    batches = samples["tickwatch_batches_applied_total"][()]
    assert batches >= 1
    # Every applied batch observed its latency and apply time, from the worker process.
    assert samples["tickwatch_batch_latency_seconds_count"][()] == batches
    assert samples["tickwatch_batch_apply_seconds_count"][()] == batches
    assert samples["tickwatch_detection_latency_seconds_count"][()] == 1
    delivered = wait_for(lambda: scrape(client).get("tickwatch_deliveries_total"), timeout=30, what="deliveries")
    assert delivered[(("channel", "kafka"), ("outcome", "sent"))] == 1
    lag = scrape(client)["tickwatch_bridge_lag"]
    assert lag and all(value == 0 for value in lag.values())


def _members(ns: Namespace) -> int:
    admin = KafkaAdminClient(bootstrap_servers=ns.settings.kafka_bootstrap)
    try:
        return len(admin.describe_groups([ns.settings.consumer_group])[ns.settings.consumer_group]["members"])
    finally:
        admin.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_bridges_on_one_host_both_run(namespace: Namespace):
    ns = namespace
    port = str(_free_port())
    ns.worker(concurrency=1)
    first, second = ns.bridge(TICKWATCH_METRICS_PORT=port), ns.bridge(TICKWATCH_METRICS_PORT=port)
    market = Scenario.build(
        symbols=[f"S{i}" for i in range(12)],
        start=datetime(2026, 11, 23, 14, tzinfo=UTC),
        interval_s=1,
        duration="2m",
        seed=4,
    )
    wait_for(
        lambda: _members(ns) == 2 or first.poll() is not None or second.poll() is not None,
        timeout=60,
        what="both bridges in the consumer group",
    )
    assert first.poll() is None and second.poll() is None, "a bridge died (metrics port clash?)"
    sent = publish(market.ticks(), ns.settings, progress=False)
    wait_for(ns.applied, timeout=120, what="all ticks applied")
    assert first.poll() is None and second.poll() is None and _members(ns) == 2
    # At least once: a rebalance while consuming may re-read a little, never less.
    assert state.stats(ns.redis)["consumed"] >= sent
    logs = " ".join(path.read_text() for path in ns.log_dir.glob("bridge-*.log"))
    assert "Address already in use" not in logs


def test_figures_of_another_version_do_not_break_the_scrape(fresh_redis: Redis):
    fresh_redis.hset(
        keys.METRICS,
        mapping={"deliveries|channel=slack": 3, "renamed_metric|x=1": 1, "deliveries|channel=slack|outcome=sent": 2},
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.RedisCollector(fresh_redis, keys.STATS).collect()
        for s in family.samples
    }
    assert samples[("tickwatch_deliveries_total", (("channel", "slack"), ("outcome", "sent")))] == 2
    assert not any(name == "tickwatch_deliveries_total" and len(labels) < 2 for name, labels in samples)
