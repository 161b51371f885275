"""The one Bolt app: built from settings by `create_bolt_app`, no network call until a request comes.

Signatures are verified by Bolt (`SLACK_SIGNING_SECRET`: unsigned, wrongly signed or stale requests get
401 before any listener runs). Authorization is the single bot token from settings, handed over without
the `auth.test` round trip Bolt would otherwise make. Errors a listener did not handle are logged and
answered where the user is looking: the command's or button's `response_url`, or an ephemeral note in
the channel of a modal's alert.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient

from bot import commands, interactive, timing, watches
from bot.backend import Backend
from bot.messages import failure_message, slow_down_message
from pipeline.context import async_slack_client
from pipeline.settings import MISSING_SLACK_TOKEN, Settings, reveal

log = logging.getLogger(__name__)


class _TokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment beside our client and warns that it is unused, at every
    start: a warning no user can act on, so it is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_quiet_bolt = logging.getLogger("slack_bolt.AsyncApp")
_quiet_bolt.addFilter(_TokenWarning())


class NotConfigured(RuntimeError):
    """A setting the bot cannot run without is missing."""


def create_bolt_app(settings: Settings, backend: Backend | None = None) -> AsyncApp:
    if not settings.slack_signing_secret:
        raise NotConfigured("set SLACK_SIGNING_SECRET (the app's Basic Information page) to verify requests")
    if not settings.slack_bot_token:
        raise NotConfigured(MISSING_SLACK_TOKEN)
    backend = backend or Backend(settings)
    token = reveal(settings.slack_bot_token)

    async def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = AsyncApp(
        logger=_quiet_bolt,
        name="tickwatch",
        signing_secret=reveal(settings.slack_signing_secret),
        client=async_slack_client(settings),
        authorize=authorize,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )

    @app.middleware
    async def attach_backend(body: dict[str, Any], context: AsyncBoltContext, next: Any) -> None:
        timing.start(body.get("command"))
        context["backend"] = backend
        await next()

    @app.middleware
    async def rate_limited(
        body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond | None, context: AsyncBoltContext, next: Any
    ) -> None:
        """Every command and click of a person counts against TICKWATCH_SLACK_RATE_LIMIT (shared by replicas)."""
        user = body.get("user_id") or (body.get("user") or {}).get("id")
        wait = await backend.run(backend.rate_limits.hit, "slack", user) if user else None
        if wait is None:
            await next()
            return
        message = slow_down_message(wait).payload()
        if body.get("command"):
            await ack(**message, response_type="ephemeral")
            return
        await ack()
        if respond is not None and respond.response_url:
            await respond(**message, response_type="ephemeral", replace_original=False)

    app.error(answer_error)
    commands.configure(app)
    interactive.configure(app)
    watches.configure(app)
    return app


async def answer_error(
    error: Exception, body: dict[str, Any], respond: AsyncRespond | None, client: AsyncWebClient
) -> None:
    """Log, then tell the user in the place they acted from; never raise from here."""
    log.exception("listener failed: %s", error, exc_info=error)
    message = failure_message().payload()
    try:
        if body.get("response_url") or body.get("response_urls") or (respond and respond.response_url):
            await respond(**message, response_type="ephemeral", replace_original=False)  # type: ignore[misc]  # Respond is typed optional; checked just above
        elif body.get("type") == "view_submission":
            subject = json.loads(body["view"].get("private_metadata") or "{}")
            if subject.get("channel"):
                await client.chat_postEphemeral(channel=subject["channel"], user=body["user"]["id"], **message)
    except Exception:  # the user is not told, but the original error is logged above
        log.exception("could not tell the user about the error")
