"""What a Slack failure means: wait and retry, fall back to plain text, or stop and tell an operator.

Rate limits, Slack's 5xx and network errors pass: they are retried. Errors no retry can fix (a revoked token, a
channel the bot is not in) are not retried; each is logged once with a one-line fix, counted in `/metrics` and
shown to admins by `/readyz` until a delivery succeeds again. A message Slack refuses for its size or blocks is
sent again as plain text (pipeline.alerting.slack_messages), never dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis import Redis
from slack_sdk.errors import SlackApiError

from pipeline import keys
from pipeline.metrics import Recorder

logger = logging.getLogger(__name__)

# Slack error -> the fix, in one line ({channel}: the alert channel).
PERMANENT: dict[str, str] = {
    "invalid_auth": "Slack does not accept SLACK_BOT_TOKEN: set the bot token (xoxb-…) of the installed app",
    "not_authed": "SLACK_BOT_TOKEN is missing from the request: set it",
    "token_revoked": "the app's token was revoked: reinstall the app and set its new SLACK_BOT_TOKEN",
    "account_inactive": "the app's workspace or bot user is inactive: reinstall the app",
    "missing_scope": "the app lacks the chat:write scope: reinstall it from `tickwatch bot manifest`",
    "channel_not_found": "Slack knows no channel {channel}: check TICKWATCH_SLACK_CHANNEL",
    "not_in_channel": "invite the bot to {channel} (`/invite @Tickwatch` in the channel)",
    "is_archived": "{channel} is archived: unarchive it or set TICKWATCH_SLACK_CHANNEL to another channel",
}
# Refused for what the message is, not for Slack's state: sent again as plain text.
TOO_RICH = frozenset({"msg_too_long", "invalid_blocks", "invalid_blocks_format", "invalid_attachments"})


@dataclass(frozen=True)
class Verdict:
    kind: Literal["retry", "permanent"]
    code: str
    retry_after: float | None = None


def code_of(error: BaseException) -> str | None:
    """The `error` field of a Web API refusal, if `error` is one."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or f"http_{error.response.status_code}")
    return None


def classify(error: BaseException) -> Verdict:
    code = code_of(error)
    if code is None:  # the network, a timeout, or Redis and Elasticsearch on our side: all pass
        return Verdict("retry", type(error).__name__)
    if code in PERMANENT:
        return Verdict("permanent", code)
    assert isinstance(error, SlackApiError)
    header = error.response.headers.get("Retry-After") or error.response.headers.get("retry-after")
    retry_after = float(header) if isinstance(header, str) and header.strip().isdigit() else None
    return Verdict("retry", code, retry_after)


def note_problem(redis: Redis, code: str, channel: str) -> None:
    """A permanent failure: logged the first time it is seen (since the last success), counted, kept for /readyz."""
    fix = PERMANENT.get(code, "check the Slack app's set-up").format(channel=channel)
    entry: dict[str, Any] = {"at": time.time(), "fix": fix}
    pipe = redis.pipeline(transaction=False)
    pipe.hsetnx(keys.SLACK_PROBLEMS, code, orjson.dumps(entry))
    figures = Recorder()
    figures.count("slack_errors", error=code)
    figures.add_to(pipe)
    if pipe.execute()[0]:
        logger.error("Slack refused an alert with %s, which retrying cannot fix: %s", code, fix)


def problems(redis: Redis) -> dict[str, str]:
    """The permanent Slack failures since the last successful delivery: error -> fix."""
    return {keys.text(code): orjson.loads(raw)["fix"] for code, raw in redis.hgetall(keys.SLACK_PROBLEMS).items()}


def clear_problems(redis: Redis) -> None:
    """A delivery went through: whatever was wrong has been fixed."""
    redis.delete(keys.SLACK_PROBLEMS)
