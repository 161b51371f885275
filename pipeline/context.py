"""The service context: settings and the clients every Tickwatch process uses, made once per process.

The Slack bot, the HTTP API, the digest DAG, the CLI and the Celery workers all build one `Context` from their
settings instead of bundles of their own. Nothing connects at construction: each client is made on first use,
so a process starts while an engine is away and fails (or waits) only when it needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from elasticsearch import Elasticsearch
from redis import Redis
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from pipeline import store
from pipeline.controls import Controls
from pipeline.rate_limits import RateLimits
from pipeline.settings import Settings, reveal

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

SLACK_RATE_LIMIT_RETRIES = 3


@dataclass
class Context:
    """One deployment's clients (each thread-safe, so threads of a process share them)."""

    settings: Settings

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)

    @cached_property
    def es(self) -> Elasticsearch:
        return store.connect(self.settings)

    @cached_property
    def indices(self) -> store.Indices:
        return store.Indices(self.settings.index_prefix)

    @cached_property
    def controls(self) -> Controls:
        return Controls(self.redis, self.settings, self.es, self.indices)

    @cached_property
    def rate_limits(self) -> RateLimits:
        return RateLimits(self.settings)

    def slack(self) -> WebClient:
        """The Web API client the pipeline posts with: see `slack_client`."""
        return slack_client(self.settings)


def slack_client(settings: Settings, *, retries: bool = True) -> WebClient:
    """A WebClient for the configured API URL that waits out 429s (Retry-After) and retries dropped links; with
    `retries=False` it answers at once (alert deliveries keep their own schedule in Redis instead of waiting)."""
    handlers = [RateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES), ConnectionErrorRetryHandler()]
    return WebClient(
        token=reveal(settings.slack_bot_token),
        base_url=settings.slack_api_url,
        timeout=settings.slack_timeout_seconds,
        retry_handlers=handlers if retries else [],
    )


def async_slack_client(settings: Settings, *, token: str | None = None) -> AsyncWebClient:
    """The same client for asyncio (the Slack bot), with the same retries.

    Bolt copies it per request with the token its `authorize` hands over, so the app's own copy has none.
    Imported here: its aiohttp is the bot's dependency, which the digest DAG's environment does not have.
    """
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
    )
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=settings.slack_timeout_seconds,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=SLACK_RATE_LIMIT_RETRIES),
            AsyncConnectionErrorRetryHandler(),
        ],
    )
