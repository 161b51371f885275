"""Prometheus figures of every bridge and worker, kept in Redis and exposed by the API's `/metrics`.

Why Redis rather than an HTTP port per process: a host runs several bridges and many worker children
(prefork), which cannot all listen on one port, and Celery children come and go. So each process adds
its figures to Redis in the pipeline it already sends per batch (`state.commit`, `state.bump`, the
delivery's own pipeline) — no extra round trip on the hot path — and the API reads them back with one
HGETALL per scrape through `RedisCollector`. Counters that already exist in `keys.STATS` (ticks,
batches, anomalies…) are exposed as they are; this module adds histograms, per-channel deliveries and
gauges. A Redis database is one deployment (tests and benches use their own), so figures never mix.

Storage: hash `tickwatch:metrics`, field `name|label=value|…` -> number. A histogram keeps one
non-cumulative count per bucket (`name_bucket|…|le=0.05`), `name_sum` and `name_count`; the collector
makes the buckets cumulative.
"""

from __future__ import annotations

import bisect
import errno
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.client import Pipeline

from pipeline import keys

PREFIX = "tickwatch_"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Spec:
    kind: Literal["counter", "histogram", "gauge"]
    help: str
    labels: tuple[str, ...] = ()


SPECS: dict[str, Spec] = {
    "batch_latency_seconds": Spec("histogram", "Bridge hand-off of a batch -> its ticks applied by a worker"),
    "batch_apply_seconds": Spec("histogram", "Worker time to apply one batch (detect, queue alerts, commit)"),
    "detection_latency_seconds": Spec("histogram", "Kafka publish of the crossing tick -> anomaly detected"),
    "delivery_latency_seconds": Spec(
        "histogram", "Kafka publish of the crossing tick -> alert delivered", ("channel",)
    ),
    "deliveries": Spec(
        "counter",
        "Alert deliveries per channel and outcome (sent, failed, duplicate; webhook "
        "attempts: succeeded, retrying, failed…)",
        ("channel", "outcome"),
    ),
    "webhook_circuit_open": Spec(
        "gauge", "1 while a webhook subscription's circuit is open (no attempts, deliveries wait)", ("subscription",)
    ),
    "slack_errors": Spec("counter", "Slack refusals no retry can fix, per Slack error", ("error",)),
    "bridge_lag": Spec(
        "gauge", "Records on the ticks topic not yet read by the bridges, per partition", ("partition",)
    ),
}

# The running counters workers and bridges keep in keys.STATS, under their exported names.
STATS_COUNTERS: dict[str, tuple[str, str]] = {
    "consumed": ("ticks_consumed", "Kafka records read from the ticks topic by the bridges"),
    "dead_lettered": ("dead_lettered", "Records sent to the dead-letter topic"),
    "batches": ("batches_applied", "Batches applied by the workers"),
    "ticks": ("ticks_applied", "Ticks applied by the workers"),
    "late": ("late_ticks", "Ticks older than the lateness allowance (stored, not evaluated)"),
    "anomalies": ("anomaly_updates", "Anomaly documents written (an episode that deepens is written again)"),
    "alerts": ("alerts", "New anomalies notified (not muted)"),
    "suspect": ("suspect_ticks", "Ticks quarantined for their timestamp or found to be bad prints (not evaluated)"),
}


def _field(name: str, labels: Mapping[str, str]) -> str:
    return "|".join([name, *(f"{key}={value}" for key, value in labels.items())])


def _parse(raw: str) -> tuple[str, dict[str, str]]:
    name, *pairs = raw.split("|")
    return name, dict(pair.split("=", 1) for pair in pairs)


@dataclass
class Recorder:
    """Figures gathered while doing the work, added to a Redis pipeline the caller sends anyway."""

    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gauges: dict[str, float] = field(default_factory=dict)

    def count(self, name: str, amount: int = 1, **labels: str) -> None:
        self._check(name, "counter", labels)
        self.counts[_field(name, labels)] += amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        self._check(name, "histogram", labels)
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        le = str(LATENCY_BUCKETS[index]) if index < len(LATENCY_BUCKETS) else "+Inf"
        self.counts[_field(f"{name}_bucket", {**labels, "le": le})] += 1
        self.counts[_field(f"{name}_count", labels)] += 1
        self.sums[_field(f"{name}_sum", labels)] += max(seconds, 0.0)

    def set(self, name: str, value: float, **labels: str) -> None:
        self._check(name, "gauge", labels)
        self.gauges[_field(name, labels)] = value

    def add_to(self, pipe: Pipeline) -> None:
        """Queue the updates on `pipe`: one HINCRBY per counter or bucket touched, HINCRBYFLOAT per sum."""
        for key, amount in self.counts.items():
            pipe.hincrby(keys.METRICS, key, amount)
        for key, total in self.sums.items():
            pipe.hincrbyfloat(keys.METRICS, key, total)
        if self.gauges:
            pipe.hset(keys.METRICS_GAUGES, mapping=cast(dict[Any, Any], self.gauges))  # redis-py: str keys are fine

    def send(self, redis: Redis) -> None:
        """For the rare figure with no pipeline to ride on (a failed delivery)."""
        pipe = redis.pipeline(transaction=False)
        self.add_to(pipe)
        pipe.execute()

    @staticmethod
    def _check(name: str, kind: str, labels: Mapping[str, str]) -> None:
        spec = SPECS.get(name)
        if spec is None or spec.kind != kind or set(labels) != set(spec.labels):
            raise ValueError(f"metric {name!r} is not a {kind} with labels {sorted(labels)} (see metrics.SPECS)")


class RedisCollector(Collector):
    """Every process's figures, as one Prometheus view (registered by the API's `/metrics`)."""

    def __init__(self, redis: Redis, stats_key: str) -> None:
        self.redis = redis
        self.stats_key = stats_key

    def collect(self) -> Iterator[Metric]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.stats_key)
        pipe.hgetall(keys.METRICS)
        pipe.hgetall(keys.METRICS_GAUGES)
        stats, stored, gauges = ([(k.decode(), float(v)) for k, v in raw.items()] for raw in pipe.execute())
        counts = dict(stats)
        for key, (name, text) in STATS_COUNTERS.items():
            yield CounterMetricFamily(PREFIX + name, text, value=counts.get(key, 0.0))
        yield from _families(stored, gauges)


def _families(stored: list[tuple[str, float]], gauges: list[tuple[str, float]]) -> Iterator[Metric]:
    samples: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for raw, value in [*stored, *gauges]:
        sample, labels = _parse(raw)
        base = next((name for name in SPECS if sample == name or sample.startswith(f"{name}_")), None)
        # Figures written by another version (a metric or label renamed since) are left out, not fatal.
        if base is not None and set(SPECS[base].labels) <= labels.keys():
            samples[base].append((sample.removeprefix(base), labels, value))
    for name, spec in SPECS.items():
        full, rows = PREFIX + name, samples.get(name, [])
        if spec.kind == "counter":
            counter = CounterMetricFamily(full, spec.help, labels=spec.labels)
            for _, labels, value in rows:
                counter.add_metric([labels[label] for label in spec.labels], value)
            yield counter
        elif spec.kind == "gauge":
            gauge = GaugeMetricFamily(full, spec.help, labels=spec.labels)
            for _, labels, value in sorted(rows, key=lambda row: sorted(row[1].items())):
                gauge.add_metric([labels[label] for label in spec.labels], value)
            yield gauge
        else:
            histogram = HistogramMetricFamily(full, spec.help, labels=spec.labels)
            for key, (buckets, total) in _histograms(rows, spec.labels).items():
                histogram.add_metric(list(key), buckets, total)
            yield histogram


def _histograms(
    rows: list[tuple[str, dict[str, str], float]], label_names: tuple[str, ...]
) -> dict[tuple[str, ...], tuple[list[tuple[str, float]], float]]:
    """Per label set: cumulative buckets and the sum, as HistogramMetricFamily.add_metric wants them."""
    per: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for suffix, labels, value in rows:
        key = tuple(labels[label] for label in label_names)
        if suffix == "_bucket":
            per[key][labels["le"]] = value
        elif suffix == "_sum":
            sums[key] = value
        else:
            per.setdefault(key, {})
    result = {}
    for key, counts in per.items():
        running, buckets = 0.0, []
        for le in [*map(str, LATENCY_BUCKETS), "+Inf"]:
            running += counts.get(le, 0.0)
            buckets.append((le, running))
        result[key] = (buckets, sums[key])
    return result


def serve_process_metrics(port: int, addr: str = "127.0.0.1") -> int:
    """Serve this process's own prometheus_client metrics on `port`, or on a free port when another process
    (a second bridge on the host) has it; returns the port used. The fleet-wide view is the API's /metrics."""
    try:
        server, _ = start_http_server(port, addr=addr)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        server, _ = start_http_server(0, addr=addr)
    return server.server_port
