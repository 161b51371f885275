"""Listener middleware that puts the subject of an interaction into the context, so listeners stay short.

Alert buttons are acknowledged here, before the anomaly is read: Slack wants the ack within 3 s and
nothing else must come first. A button acts only on what its own message is about: a click whose anomaly (or
storm) is not the one the clicked message shows is refused, so a forged payload cannot reach another alert.
Modal submissions carry their subject in `private_metadata` (no lookup).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.backend import Backend
from bot.messages import alert_gone_message, not_this_message, storm_gone_message
from bot.modals import ModalSubject
from pipeline import history
from pipeline.alerting import storms
from pipeline.alerting.actions import AlertAction, MuteChoice, parse_reason

Next = Callable[[], Awaitable[Any]]


def element_value(body: dict[str, Any]) -> str:
    """The value of the clicked button or of the chosen menu option."""
    action = body["actions"][0]
    return (action.get("selected_option") or {}).get("value") or action.get("value") or ""


def message_ref(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, ts) of the message the clicked element is on."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts") or (body.get("message") or {}).get("ts")


async def load_alert(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, next: Next
) -> None:
    """Ack, then `context["anomaly"]` (and `context["mute_choice"]` for the Mute menu, `context["ack_reason"]`
    for "Acknowledge: …") and `message_ref`."""
    await ack()
    backend: Backend = context["backend"]
    value = element_value(body)
    action = body["actions"][0]["action_id"]
    try:
        if action == AlertAction.MUTE:
            value, context["mute_choice"] = MuteChoice.parse(value)
        elif action == AlertAction.ACKNOWLEDGE_AS:
            value, context["ack_reason"] = parse_reason(value)
    except ValueError:  # not an option this message offered
        await respond(**not_this_message().payload(), response_type="ephemeral", replace_original=False)
        return
    anomaly = await backend.run(history.get_anomaly, backend.es, backend.indices, value)
    if anomaly is None:
        await respond(**alert_gone_message().payload(), response_type="ephemeral", replace_original=False)
        return
    ref = message_ref(body)
    if anomaly.slack is None or (anomaly.slack.channel, anomaly.slack.ts) != ref:  # a forged or stale click
        await respond(**not_this_message().payload(), response_type="ephemeral", replace_original=False)
        return
    context["anomaly"] = anomaly
    context["message_ref"] = ref
    await next()


async def load_storm(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, next: Next
) -> None:
    """Ack, then `context["storm_id"]` and `context["storm_members"]` (anomaly ids) and `message_ref`."""
    await ack()
    backend: Backend = context["backend"]
    storm_id = element_value(body)
    member_ids = await backend.run(storms.storm_members, backend.redis, storm_id)
    if not member_ids:
        await respond(**storm_gone_message().payload(), response_type="ephemeral", replace_original=False)
        return
    ref, posted = message_ref(body), await backend.run(storms.message_ref, backend.redis, storm_id)
    if posted is None or (posted.channel, posted.ts) != ref:  # a forged or stale click
        await respond(**not_this_message().payload(), response_type="ephemeral", replace_original=False)
        return
    context["storm_id"], context["storm_members"] = storm_id, member_ids
    context["message_ref"] = ref
    await next()


async def load_modal_subject(body: dict[str, Any], context: AsyncBoltContext, next: Next) -> None:
    """`context["subject"]`: the ModalSubject a modal was opened for."""
    context["subject"] = ModalSubject.from_metadata(body["view"]["private_metadata"])
    await next()
