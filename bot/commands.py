"""Slash-command listeners: parse, ack (with the usage or help right in the ack body), then answer.

Answers go through `respond()` (the command's `response_url`); reads are ephemeral, changes are posted
in the channel so the team sees who muted what. `configure(app)` registers one listener per `Command`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import answers, authority, timing
from bot.backend import Backend, actor
from bot.enums import Command
from bot.messages import Message, anomalies_message, help_message, slow_down_message, usage_message
from bot.parsing import (
    HELP,
    SuggestRequest,
    SymbolRequest,
    Usage,
    parse_anomalies,
    parse_group,
    parse_mute,
    parse_no_arguments,
    parse_price,
    parse_target_only,
    parse_threshold,
)
from pipeline import keys
from pipeline.durations import format_duration

NOT_PARSED = object()
WORKSPACE_URL_CACHE_SECONDS = 24 * 3600


async def price(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    request = await parse_and_ack(ack, Command.PRICE, parse_price, command)
    if request is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    await answer(respond, await backend.run(answers.price_answer, backend, request.symbol, request.window))
    if request.chart and not answers.charts_installed():
        await respond(response_type="ephemeral", text=answers.CHARTS_MISSING)
    elif request.chart:
        await _upload_chart(backend, client, command["channel_id"], request.symbol, request.window)


async def anomalies(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    request = await parse_and_ack(ack, Command.ANOMALIES, parse_anomalies, command)
    if request is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    found = await backend.run(answers.recent_anomalies, backend, request.symbol, request.window)
    if isinstance(found, Message):
        await answer(respond, found)
        return
    items, truncated = found
    workspace = await _workspace_url(backend, client) if any(a.slack for a in items) else None
    listed = [(a, a.slack.permalink(workspace) if a.slack else None) for a in items]
    await answer(respond, anomalies_message(request.symbol, request.window, listed, truncated=truncated))


async def mute(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.MUTE, parse_mute, command)
    if request is NOT_PARSED or not await _allowed(context, command, respond):
        return
    backend: Backend = context["backend"]
    message, changed = await backend.run(answers.mute, backend, request, actor(command))
    await answer(respond, message, public=changed)


async def unmute(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.UNMUTE, parse_target_only, command)
    if request is NOT_PARSED or not await _allowed(context, command, respond):
        return
    backend: Backend = context["backend"]
    message = await backend.run(answers.unmute, backend, request.symbol, actor(command))
    await answer(respond, message, public=True)


async def mutes(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    if await parse_and_ack(ack, Command.MUTES, parse_no_arguments, command) is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    await answer(respond, await backend.run(answers.mutes, backend))


async def group(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.GROUP, parse_group, command)
    if request is NOT_PARSED:
        return
    if request.name is not None and request.action != "show" and not await _allowed(context, command, respond):
        return
    backend: Backend = context["backend"]
    message, changed = await backend.run(answers.groups, backend, request, actor(command))
    await answer(respond, message, public=changed)


async def threshold(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.THRESHOLD, parse_threshold, command)
    if request is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    if isinstance(request, SymbolRequest):
        await answer(respond, await backend.run(answers.rules, backend, request.symbol))
    elif isinstance(request, SuggestRequest):
        await answer(respond, await backend.run(answers.suggest_thresholds, backend, request.symbol))
    elif not await _allowed(context, command, respond):  # a preview replays days of ticks: gated like a change
        return
    elif request.preview:
        if (wait := await backend.run(backend.rate_limits.hit, "preview", command["user_id"])) is not None:
            await answer(respond, slow_down_message(wait))
            return
        await answer(respond, await backend.run(answers.preview_threshold, backend, request))
    else:
        message, changed = await backend.run(answers.set_threshold, backend, request, actor(command))
        await answer(respond, message, public=changed)


LISTENERS: dict[Command, Callable[..., Any]] = {
    Command.PRICE: price,
    Command.ANOMALIES: anomalies,
    Command.MUTE: mute,
    Command.UNMUTE: unmute,
    Command.MUTES: mutes,
    Command.GROUP: group,
    Command.THRESHOLD: threshold,
}


def configure(app: AsyncApp) -> None:
    for command, listener in LISTENERS.items():
        app.command(command)(listener)


# --- helpers --------------------------------------------------------------------------------------


async def parse_and_ack(ack: AsyncAck, command: Command, parser: Callable[[str], Any], body: dict[str, Any]) -> Any:
    """Parse the text and ack at once: with help or the usage line when that is the whole answer."""
    try:
        request = parser(body.get("text") or "")
    except Usage as error:
        await ack(**usage_message(command, str(error)).payload(), response_type="ephemeral")
        return NOT_PARSED
    if request is HELP:
        await ack(**help_message(command).payload(), response_type="ephemeral")
        return NOT_PARSED
    await ack()
    return request


async def _allowed(context: AsyncBoltContext, body: dict[str, Any], respond: AsyncRespond) -> bool:
    refusal = await authority.may_change(context["backend"], context.client, body, body.get("channel_id"))
    if refusal is not None:
        await answer(respond, refusal)
    return refusal is None


async def answer(respond: AsyncRespond, message: Message, *, public: bool = False) -> None:
    timing.answered()
    await respond(**message.payload(), response_type="in_channel" if public else "ephemeral")


async def _workspace_url(backend: Backend, client: AsyncWebClient) -> str | None:
    """The workspace's URL for permalinks: TICKWATCH_SLACK_WORKSPACE_URL, else what `auth.test` says, asked once
    a day and kept in Redis for every replica; None when Slack cannot say (the list goes without links)."""
    if backend.settings.slack_workspace_url:
        return backend.settings.slack_workspace_url
    cached = await backend.run(backend.redis.get, keys.SLACK_WORKSPACE_URL)
    if cached:
        return keys.text(cached)
    try:
        url = (await client.auth_test()).get("url")
    except SlackApiError:
        return None
    if url:
        await backend.run(backend.redis.set, keys.SLACK_WORKSPACE_URL, url, ex=WORKSPACE_URL_CACHE_SECONDS)
    return url


async def _upload_chart(backend: Backend, client: AsyncWebClient, channel: str, symbol: str, window: timedelta) -> None:
    """`--chart`: the window as a PNG in the channel (files_upload_v2), after the text answer."""
    chart = await backend.run(answers.price_chart, backend, symbol, window)
    if chart is not None:
        png, title = chart
        filename = f"{symbol.replace('/', '-')}-{format_duration(window.total_seconds())}.png"  # EUR/USD
        await client.files_upload_v2(channel=channel, content=png, filename=filename, title=title)
