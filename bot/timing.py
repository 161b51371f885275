"""How long a slash command takes the server, from request to answer ready (Slack's own time not in it).

Logged at INFO per command (`/price answered in 12.3 ms`) for operators, and read back by
`tickwatch bench`. The start is a context variable set by the app's first middleware, so the listener's
task (which Bolt starts from that context) sees it without any argument passed around.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

log = logging.getLogger(__name__)
_started: ContextVar[tuple[str, float] | None] = ContextVar("tickwatch_command_started", default=None)


def start(command: str | None) -> None:
    """Called when a request arrives; only slash commands (`command` set) are timed."""
    _started.set((command, time.perf_counter()) if command else None)


def answered() -> None:
    """Called when the answer is built, just before it is sent."""
    started = _started.get()
    if started is not None:
        command, at = started
        log.info("%s answered in %.1f ms", command, (time.perf_counter() - at) * 1000)
