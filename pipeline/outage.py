"""Waiting out an engine that is away: one log line when it goes, one when it is back, capped backoff.

Daemons (the bridge, the workers' scheduler, the API and the bot) must never exit because Kafka, Redis or
Elasticsearch is briefly unreachable, and must not log a traceback per retry either. An `Outage` remembers
whether its engine is away, so callers report transitions, not attempts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

BACKOFF_START_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 15.0


@dataclass
class Outage:
    """One engine's availability as one process sees it."""

    what: str  # e.g. "Kafka at 127.0.0.1:9092"
    logger: logging.Logger
    away: bool = False
    failures: int = field(default=0)

    def failed(self, error: BaseException) -> float:
        """Note a failure; logs the first of a run. Returns how long to wait before trying again."""
        if not self.away:
            self.logger.warning("%s is not reachable (%s: %s); waiting for it", self.what, type(error).__name__, error)
            self.away = True
        self.failures += 1
        return min(BACKOFF_MAX_SECONDS, BACKOFF_START_SECONDS * 2 ** (self.failures - 1))

    def ok(self) -> None:
        """Note a success; logs the end of an outage."""
        if self.away:
            self.logger.warning("%s is back after %d failed attempt(s)", self.what, self.failures)
        self.away, self.failures = False, 0
