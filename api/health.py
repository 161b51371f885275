"""Open endpoints for operators: liveness, readiness of the engines, and Prometheus metrics."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from kafka import KafkaConsumer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from api.deps import services
from pipeline import keys
from pipeline.context import Context
from pipeline.metrics import RedisCollector

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]  # engine -> "ok" or what is wrong


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


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Kafka, Redis and Elasticsearch are reachable",
    responses={503: {"model": Readiness, "description": "an engine is not reachable"}},
)
def readyz(request: Request, response: Response) -> Readiness:
    checks = request.app.state.engine_checks.run()
    ready = all(value == "ok" for value in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "not ready", checks=checks)


@router.get(
    "/metrics",
    summary="Prometheus metrics of every bridge and worker (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(svc: Annotated[Context, Depends(services)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(svc.redis, keys.STATS))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
