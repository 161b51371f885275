"""Personal watchlists in Slack: /watch, /watches, /unwatch, the buttons on watch DMs, and the App Home tab.

A watch is personal: anyone who is a full member may set their own (the channel's admin lists do not apply, as
nothing the channel sees changes), and only the watcher may act on its DM. Answers are ephemeral; the rules and
their checks are the pipeline's (pipeline.watches), shared with the API.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot import authority
from bot.backend import Backend, actor
from bot.commands import NOT_PARSED, answer, parse_and_ack
from bot.enums import Command
from bot.messages import Message, plain
from bot.parsing import QuietRequest, WatchRequest, parse_no_arguments, parse_unwatch, parse_watch
from bot.texts import WATCHES, render
from pipeline.alerting import dms
from pipeline.alerting.actions import WatchAction
from pipeline.mutes import Mute
from pipeline.watches import Watch, Watches, parse_watch_words

HOME_ITEMS = 15  # of each list on the Home tab (a view takes at most 100 blocks)


def _watches(backend: Backend) -> Watches:
    return Watches(backend.redis, backend.settings)


async def watch(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.WATCH, parse_watch, command)
    if request is NOT_PARSED or not await _member(context, command, respond):
        return
    backend: Backend = context["backend"]
    user = command["user_id"]
    if isinstance(request, QuietRequest):
        await backend.run(_watches(backend).set_quiet, user, request.quiet)
        zone = await backend.run(dms.zone_of, backend.redis, backend.slack(), user)
        await answer(respond, plain(render(WATCHES, "quiet_set", request.quiet, str(zone))))
        return
    assert isinstance(request, WatchRequest)
    try:
        asked = parse_watch_words(user, request.words, backend.settings.window_seconds)
        made, replaced = await backend.run(_watches(backend).add, asked)
    except ValueError as error:
        await answer(respond, plain(render(WATCHES, "refused", str(error))))
        return
    await answer(respond, plain(render(WATCHES, "watching", made, replaced)))


async def watches(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    if await parse_and_ack(ack, Command.WATCHES, parse_no_arguments, command) is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    await answer(respond, await backend.run(_listing, backend, command["user_id"]))


async def unwatch(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    request = await parse_and_ack(ack, Command.UNWATCH, parse_unwatch, command)
    if request is NOT_PARSED:
        return
    backend: Backend = context["backend"]
    removed = await backend.run(_watches(backend).remove, command["user_id"], request.target, request.rule)
    text = render(WATCHES, "unwatched", removed) if removed else render(WATCHES, "not_watching", request.target)
    await answer(respond, plain(text))


def _listing(backend: Backend, user: str) -> Message:
    found = _watches(backend)
    return plain(
        render(WATCHES, "listing", found.of_user(user), found.quiet_of(user), backend.settings.max_watches_per_user)
    )


# --- the DM's buttons -----------------------------------------------------------------------------


async def acknowledge_watch(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    await ack()
    backend: Backend = context["backend"]
    done = await backend.run(dms.acknowledge, backend.redis, backend.slack(), _value(body), body["user"]["id"])
    await _after(backend, client, body, respond, done)


async def unwatch_from_dm(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    await ack()
    backend: Backend = context["backend"]
    user = body["user"]["id"]
    done = await backend.run(dms.unwatch, backend.redis, backend.slack(), backend.settings, _value(body), user)
    await _after(backend, client, body, respond, done)


async def _after(
    backend: Backend, client: AsyncWebClient, body: dict[str, Any], respond: AsyncRespond, done: Any
) -> None:
    """A refusal only to whoever clicked; a change also redraws their Home tab when they clicked there."""
    if isinstance(done, dms.Refusal):
        if respond.response_url is None:
            return
        await respond(**plain(render(WATCHES, "refused", done.text)).payload(), replace_original=False)
    elif (body.get("view") or {}).get("type") == "home":
        await publish_home(backend, client, body["user"]["id"])


# --- App Home -------------------------------------------------------------------------------------


async def home_opened(event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext) -> None:
    if event.get("tab") not in (None, "home"):
        return
    await publish_home(context["backend"], client, event["user"])


async def remove_from_home(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    await ack()
    backend: Backend = context["backend"]
    target, _, rule = _value(body).rpartition("|")
    if target:  # a forged value removes nothing but the clicker's own watch, if any
        await backend.run(_watches(backend).remove, body["user"]["id"], target, rule)
    await publish_home(backend, client, body["user"]["id"])


async def unmute_from_home(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    """Unmuting changes what the channel sees: gated like /unmute, and only the mutes the clicker made."""
    await ack()
    backend: Backend = context["backend"]
    user = body["user"]["id"]
    target = _value(body)
    mine = {m.symbol for m in await backend.run(backend.controls.mutes) if m.by_id == user}
    if target in mine and await authority.may_change(backend, client, body, None) is None:
        await backend.run(backend.controls.unmute, target, actor(body))
    await publish_home(backend, client, user)


async def publish_home(backend: Backend, client: AsyncWebClient, user: str) -> None:
    blocks = await backend.run(home_blocks, backend, user)
    await client.views_publish(user_id=user, view=View(type="home", blocks=blocks).to_dict())


def home_blocks(backend: Backend, user: str) -> list[Block]:
    """Your watches (Unwatch), the mutes you made (Unmute), the latest alerts on your watches (Acknowledge)."""
    mine = _watches(backend).of_user(user)
    mutes = [m for m in backend.controls.mutes() if m.by_id == user]
    alerts = dms.recent(backend.redis, user)
    blocks: list[Block] = [HeaderBlock(text=render(WATCHES, "home_title"))]
    blocks += _home_list(render(WATCHES, "home_watches", len(mine)), mine, _watch_item, "home_no_watches")
    blocks.append(DividerBlock())
    blocks += _home_list(render(WATCHES, "home_mutes", len(mutes)), mutes, _mute_item, "home_no_mutes")
    blocks.append(DividerBlock())
    blocks += _home_list(render(WATCHES, "home_alerts", len(alerts)), alerts, _alert_item, "home_no_alerts")
    return blocks


def _home_list(title: str, items: list[Any], item: Any, empty: str) -> list[Block]:
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=title))]
    blocks += [item(found) for found in items[:HOME_ITEMS]]
    if not items:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=render(WATCHES, empty))]))
    return blocks


def _button(name: str, action: WatchAction, value: str) -> ButtonElement:
    return ButtonElement(text=render(WATCHES, "label", name), action_id=action, value=value)


def _watch_item(found: Watch) -> SectionBlock:
    return SectionBlock(
        text=MarkdownTextObject(text=render(WATCHES, "home_watch", found)),
        accessory=_button("unwatch", WatchAction.REMOVE, f"{found.target}|{found.rule}"),
    )


def _mute_item(found: Mute) -> SectionBlock:
    return SectionBlock(
        text=MarkdownTextObject(text=render(WATCHES, "home_mute", found)),
        accessory=_button("unmute", WatchAction.UNMUTE, found.symbol),
    )


def _alert_item(record: dms.Record) -> SectionBlock:
    anomaly = record.anomaly
    open_ = anomaly.status != "resolved" and anomaly.acknowledged_by is None
    return SectionBlock(
        text=MarkdownTextObject(text=render(WATCHES, "home_alert", anomaly, record.says)),
        accessory=_button("acknowledge", WatchAction.ACKNOWLEDGE, anomaly.id) if open_ else None,
    )


# --- wiring ---------------------------------------------------------------------------------------


async def _member(context: AsyncBoltContext, body: dict[str, Any], respond: AsyncRespond) -> bool:
    """Watches are personal: a full member sets their own, whatever the channel's admin lists say."""
    refusal = await authority.may_acknowledge(context["backend"], context.client, body)
    if refusal is not None:
        await answer(respond, refusal)
    return refusal is None


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


def configure(app: AsyncApp) -> None:
    app.command(Command.WATCH)(watch)
    app.command(Command.WATCHES)(watches)
    app.command(Command.UNWATCH)(unwatch)
    app.action(WatchAction.ACKNOWLEDGE)(acknowledge_watch)
    app.action(WatchAction.UNWATCH)(unwatch_from_dm)
    app.action(WatchAction.REMOVE)(remove_from_home)
    app.action(WatchAction.UNMUTE)(unmute_from_home)
    app.event("app_home_opened")(home_opened)
