"""Shared fixtures of the pipeline's tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis import Redis

from pipeline import store
from pipeline.controls import Controls
from pipeline.settings import Settings


@pytest.fixture
def service(fresh_redis: Redis, real_stack: Settings) -> Iterator[Controls]:
    es = store.connect(real_stack)
    indices = store.Indices(f"tw-ctl{uuid.uuid4().hex[:8]}")
    store.ensure_templates(es, indices)
    yield Controls(fresh_redis, Settings(drop_pct=5, rise_pct=5, window_seconds=300), es, indices)
    for name in (indices.anomalies, indices.audit):
        es.indices.delete(index=name, ignore_unavailable=True)
