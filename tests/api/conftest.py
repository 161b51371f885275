"""The API's tests share one seeded history (module-scoped), a fresh Redis per test, and two tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from api.app import create_app
from pipeline import store
from pipeline.settings import Settings
from tests.conftest import redis_url_for
from tickwatch.bench.seed import SeedSpec, discard, ensure_history

ADMIN = "admin-token-0123456789"
READER = "read-token-0123456789"
SPEC = SeedSpec(symbols=3, ticks_per_symbol=600, moves_per_symbol=2)  # AAPL, MSFT, TSLA; 40 minutes each
WORKSPACE = "https://acme.slack.com"


@pytest.fixture(scope="module")
def seeded(real_stack: Settings) -> Iterator[store.Indices]:
    indices = ensure_history(real_stack, SPEC, prefix=f"tw-api-{uuid.uuid4().hex[:8]}")
    yield indices
    discard(store.connect(real_stack), indices)


@pytest.fixture
def settings(real_stack: Settings, seeded: store.Indices, fresh_redis: Redis) -> Settings:
    db = fresh_redis.connection_pool.connection_kwargs["db"]
    return Settings(
        redis_url=redis_url_for(real_stack, db),
        es_url=real_stack.es_url,
        kafka_bootstrap=real_stack.kafka_bootstrap,
        index_prefix=seeded.prefix,
        slack_workspace_url=WORKSPACE,
        api_tokens=[
            {"name": "ops-bot", "token": ADMIN, "scope": "admin"},
            {"name": "grafana", "token": READER, "scope": "read"},
        ],
    )


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    return body
