"""Rate limits per API token and per Slack user, kept in Redis so every replica of the API and the bot shares
them (the `limits` library, moving windows). Generous for people; tight for threshold previews, each a replay of
up to 7 days of ticks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from pipeline.settings import Settings

Kind = Literal["api", "slack", "preview"]


@dataclass
class RateLimits:
    settings: Settings

    @cached_property
    def limiter(self) -> MovingWindowRateLimiter:
        return MovingWindowRateLimiter(RedisStorage(self.settings.redis_url, key_prefix="tickwatch:limits"))

    def _limit(self, kind: Kind) -> RateLimitItem:
        text = {
            "api": self.settings.api_rate_limit,
            "slack": self.settings.slack_rate_limit,
            "preview": self.settings.preview_rate_limit,
        }[kind]
        return parse(text)

    def hit(self, kind: Kind, who: str) -> float | None:
        """Count one request of `who`; None if it may go on, else the seconds until it may (Retry-After)."""
        limit = self._limit(kind)
        if self.limiter.hit(limit, kind, who):
            return None
        reset = self.limiter.get_window_stats(limit, kind, who).reset_time
        return max(1.0, reset - time.time())
