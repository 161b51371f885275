"""What the listeners work with: settings and the clients of the core services, built once per process.

The core's clients (Elasticsearch, Redis) are synchronous; listeners run them in a worker thread with
`Backend.run`, so one slow query never stalls the event loop that acknowledges other requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

from pipeline.alerting.slack_messages import AlertMessages
from pipeline.audit import Actor
from pipeline.context import Context

T = TypeVar("T")


class Backend(Context):
    """The service context plus what listeners need on top: the alert-message service and a thread hop."""

    @cached_property
    def messages(self) -> AlertMessages:
        """Redraws alert and storm messages the pipeline's way (re-posts one Slack lost)."""
        return AlertMessages(self, client=self.slack())  # a person waits: ride out a 429 inside the call

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking core function off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)


def actor(body: dict[str, Any]) -> Actor:
    """Who clicked or typed: slash commands carry user_id/user_name, interactions a user object."""
    if "user" in body and isinstance(body["user"], dict):
        user = body["user"]
        return Actor(name=user.get("username") or user.get("name") or user["id"], via="slack", id=user["id"])
    return Actor(name=body.get("user_name") or body["user_id"], via="slack", id=body["user_id"])
