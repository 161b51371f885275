"""What the listeners work with: settings and the clients of the core services, built once per process.

The core's clients (Elasticsearch, Redis) are synchronous; listeners run them in a worker thread with
`Backend.run`, so one slow query never stalls the event loop that acknowledges other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from elasticsearch import Elasticsearch
from redis import Redis
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from pipeline import store
from pipeline.alerting.slack_messages import SlackNotifier
from pipeline.controls import Actor, Controls
from pipeline.settings import Settings

T = TypeVar("T")


@dataclass
class Backend:
    settings: Settings
    es: Elasticsearch
    indices: store.Indices
    redis: Redis
    controls: Controls
    notifier: SlackNotifier  # redraws alert and storm messages the pipeline's way (re-posts one Slack lost)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backend:
        """No network call here: the clients connect on first use."""
        es, redis, indices = (
            store.connect(settings),
            Redis.from_url(settings.redis_url),
            store.Indices(settings.index_prefix),
        )
        return cls(
            settings,
            es,
            indices,
            redis,
            Controls(redis, settings, es, indices),
            SlackNotifier(settings, redis=redis, es=es),
        )

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking core function off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)

    def may_change(self, user_id: str | None, channel_id: str | None) -> bool:
        """Mutes and thresholds: everyone, unless allow-lists of users and/or channels are configured."""
        users, channels = self.settings.slack_admin_users, self.settings.slack_admin_channels
        return (not users or user_id in users) and (not channels or channel_id in channels)


def web_client(settings: Settings, *, token: str | None = None) -> AsyncWebClient:
    """The bot's Web API client: the configured base URL, 429s waited out (Retry-After), dropped links retried.

    Bolt copies it per request with the token its `authorize` hands over, so the app's own copy has none.
    """
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3), AsyncConnectionErrorRetryHandler()],
    )


def actor(body: dict[str, Any]) -> Actor:
    """Who clicked or typed: slash commands carry user_id/user_name, interactions a user object."""
    if "user" in body and isinstance(body["user"], dict):
        user = body["user"]
        return Actor(name=user.get("username") or user.get("name") or user["id"], via="slack", id=user["id"])
    return Actor(name=body.get("user_name") or body["user_id"], via="slack", id=body["user_id"])
