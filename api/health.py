"""Open endpoints for operators: liveness, readiness of the engines, and Prometheus metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from kafka import KafkaConsumer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from api.auth import is_admin
from api.deps import services
from pipeline import circuit, keys
from pipeline.alerting import slack_errors
from pipeline.context import Context
from pipeline.metrics import RedisCollector
from pipeline.webhooks import subscriptions

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0
CACHE_SECONDS = 3.0  # readiness answers are at most this old


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] | None = Field(
        None, description="admin tokens only: each engine, 'ok' or what is wrong (hosts and errors)"
    )
    delivery: dict[str, Any] | None = Field(
        None, description="admin tokens only: Slack refusals no retry can fix (error -> fix), open circuits"
    )


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health()


class EngineChecks:
    """Kafka, Redis and Elasticsearch answer (a real request each, in parallel, bounded in time)."""

    def __init__(self, svc: Context) -> None:
        self.svc = svc
        self.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="readyz")
        self._kafka: KafkaConsumer | None = None
        self._kafka_lock = threading.Lock()
        self._lock = threading.Lock()
        self._answer: dict[str, str] | None = None
        self._answered_at = 0.0

    def kafka(self) -> str:
        with self._kafka_lock:  # kafka-python clients are not thread-safe
            if self._kafka is None:
                self._kafka = KafkaConsumer(
                    bootstrap_servers=self.svc.settings.kafka_bootstrap, request_timeout_ms=5000
                )
            topics = self._kafka.topics()  # a fresh metadata request to the brokers
        return "ok" if self.svc.settings.ticks_topic in topics else f"topic {self.svc.settings.ticks_topic} missing"

    def redis(self) -> str:
        self.svc.redis.ping()
        return "ok"

    def elasticsearch(self) -> str:
        # Cluster health, not `GET /` (which some distributions, like the loopback one here, do not serve).
        health = self.svc.es.options(request_timeout=CHECK_TIMEOUT_SECONDS).cluster.health()
        return "ok" if health["status"] in ("green", "yellow") else f"cluster status {health['status']}"

    def run(self) -> dict[str, str]:
        """The engines' state, at most CACHE_SECONDS old. One check runs at a time; callers meanwhile get the
        last answer (or wait for the first), so a flood of probes costs three requests per few seconds."""
        with self._lock:
            if self._answer is None or time.monotonic() - self._answered_at > CACHE_SECONDS:
                self._answer, self._answered_at = self._check(), time.monotonic()
            return self._answer

    def _check(self) -> dict[str, str]:
        futures = {name: self.pool.submit(getattr(self, name)) for name in ("kafka", "redis", "elasticsearch")}
        results = {}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=CHECK_TIMEOUT_SECONDS)
            except FutureTimeout:
                results[name] = f"no answer within {CHECK_TIMEOUT_SECONDS:.0f}s"
            except Exception as error:
                results[name] = f"unreachable: {error.__class__.__name__}: {error}"[:300]
        return results


def _delivery(svc: Context) -> dict[str, Any]:
    """What an operator must fix or wait out in delivery (read from Redis; empty if it is away)."""
    try:
        slack = circuit.status(svc.redis, "slack", cooloff=svc.settings.slack_circuit_cooloff_seconds)
        open_webhooks = [
            sub.id
            for sub in subscriptions.list_all(svc.redis)
            if circuit.status(
                svc.redis, subscriptions.circuit_name(sub.id), cooloff=svc.settings.webhook_circuit_cooloff_seconds
            ).state
            != "closed"
        ]
        return {
            "slack_problems": slack_errors.problems(svc.redis),
            "slack_circuit": slack.state,
            "open_webhook_circuits": open_webhooks,
        }
    except RedisError:
        return {}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Kafka, Redis and Elasticsearch are reachable",
    responses={503: {"model": Readiness, "description": "an engine is not reachable"}},
)
def readyz(request: Request, response: Response, admin: Annotated[bool, Depends(is_admin)]) -> Readiness:
    """Anyone gets the status (for probes); an admin token also gets the details (hosts, errors, delivery)."""
    checks = request.app.state.engine_checks.run()
    ready = all(value == "ok" for value in checks.values())
    response.status_code = 200 if ready else 503
    status: Literal["ready", "not ready"] = "ready" if ready else "not ready"
    if not admin:
        return Readiness(status=status)
    return Readiness(status=status, checks=checks, delivery=_delivery(request.app.state.services))


@router.get(
    "/metrics",
    summary="Prometheus metrics of every bridge and worker (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request, svc: Annotated[Context, Depends(services)]) -> Response:
    engines = GaugeMetricFamily("tickwatch_engine_up", "1 while the engine answers the API's checks", labels=["engine"])
    for engine, state in request.app.state.engine_checks.run().items():
        engines.add_metric([engine], float(state == "ok"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([engines]))
    if engines.samples and all(sample.value for sample in engines.samples if sample.labels["engine"] == "redis"):
        registry.register(RedisCollector(svc.redis, keys.STATS))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families
