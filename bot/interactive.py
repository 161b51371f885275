"""Listeners for the alert message's buttons, the modals they open, and the storm message's buttons.

Alert and storm actions are acknowledged by their middleware (`bot.middleware`) before anything is read;
the listeners here do the work. Every change goes through `Controls` (which audits it) and is confirmed in
the alert's thread, where the whole team sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import answers, authority
from bot.backend import Backend, actor
from bot.enums import BlockId, ModalAction, ModalCallback, SuggestionAction
from bot.fields import picked_duration
from bot.messages import (
    Message,
    control_error_message,
    history_context,
    slow_down_message,
    storm_acknowledged_message,
    storm_muted_message,
)
from bot.middleware import element_value, load_alert, load_modal_subject, load_storm
from bot.modals import ModalSubject, mute_modal, submitted, threshold_modal
from bot.parsing import ThresholdRequest
from bot.texts import ACTIONS, render
from pipeline.alerting import anomalies, storms
from pipeline.alerting.actions import AlertAction, MuteChoice
from pipeline.detect import backtest
from pipeline.detect.rules import MAX_WINDOW_SECONDS, threshold_problem
from pipeline.durations import format_duration, parse_seconds
from pipeline.schema import AckReason, Anomaly, RuleName, SlackRef, normalise_symbol

HISTORY_WINDOW = timedelta(hours=1)
STORM_MUTE = timedelta(hours=1)


# --- alert buttons --------------------------------------------------------------------------------


async def acknowledge(body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
    """Record who acknowledged, and why when they picked a reason (idempotent: the first click wins; a reason
    can still be added), audit it, and redraw the message in place."""
    backend: Backend = context["backend"]
    if (refusal := await authority.may_acknowledge(backend, context.client, body)) is not None:
        await respond(**refusal.payload(), response_type="ephemeral", replace_original=False)
        return
    who, anomaly, reason = actor(body), context["anomaly"], context.get("ack_reason")
    updated = await backend.run(
        anomalies.acknowledge, backend.es, backend.indices, anomaly.id, who.id or who.name, reason=reason
    )
    if isinstance(reason, AckReason) and updated.ack_reason is reason:
        state = {"anomaly": anomaly.id, "rule": anomaly.rule, "reason": reason.value}
        await backend.run(backend.controls.audit.record, "acknowledge", anomaly.symbol, None, state, who)
    await backend.run(backend.messages.changed, updated.id)


async def mute(body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, context: AsyncBoltContext) -> None:
    """1 h and "until tomorrow" (00:00 UTC) mute at once; "custom" opens a modal with duration and reason."""
    backend: Backend = context["backend"]
    anomaly: Anomaly = context["anomaly"]
    if not await _allowed(backend, body, respond, context):
        return
    subject = ModalSubject.of(anomaly, *context["message_ref"])
    choice: MuteChoice = context["mute_choice"]
    if choice is MuteChoice.CUSTOM:
        await client.views_open(trigger_id=body["trigger_id"], view=mute_modal(subject))
        return
    message, changed = await backend.run(
        answers.mute_until, backend, anomaly.symbol, actor(body), mute_end(choice, datetime.now(UTC))
    )
    await _confirm(client, subject, body["user"]["id"], message, changed)


async def show_history(respond: AsyncRespond, context: AsyncBoltContext) -> None:
    """A `/price`-style answer for the hour around the anomaly, only for whoever clicked."""
    backend: Backend = context["backend"]
    anomaly: Anomaly = context["anomaly"]
    message = await backend.run(
        answers.price_answer,
        backend,
        anomaly.symbol,
        HISTORY_WINDOW,
        end=anomaly.timestamp + HISTORY_WINDOW / 2,
        context=history_context(anomaly),
    )
    await respond(**message.payload(), response_type="ephemeral", replace_original=False)


async def adjust_threshold(
    body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Open the threshold modal, prefilled with the rule as it applies to the symbol now."""
    backend: Backend = context["backend"]
    anomaly: Anomaly = context["anomaly"]
    if not await _allowed(backend, body, respond, context):
        return
    current = (await backend.run(backend.controls.rules, anomaly.symbol))[anomaly.rule]
    subject = ModalSubject.of(anomaly, *context["message_ref"])
    await client.views_open(trigger_id=body["trigger_id"], view=threshold_modal(subject, current))


# --- modals ---------------------------------------------------------------------------------------


async def preview_in_modal(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    """The modal's Preview button: replay the typed rule over 7 days and redraw the modal with the count."""
    await ack()
    backend: Backend = context["backend"]
    subject: ModalSubject = context["subject"]
    view = body["view"]
    refusal = await authority.may_change(backend, client, body, subject.channel)
    wait = None if refusal else await backend.run(backend.rate_limits.hit, "preview", body["user"]["id"])
    try:
        if refusal is not None:  # a preview replays days of ticks: gated like a change
            raise ValueError(refusal.text)
        if wait is not None:
            raise ValueError(slow_down_message(wait).text)
        threshold_pct, window_seconds = threshold_inputs(view, subject.rule)
        result = await backend.run(
            answers.preview,
            backend,
            subject.symbol,
            subject.rule,
            threshold_pct=threshold_pct,
            window_seconds=window_seconds,
        )
        text = backtest.preview_text(result)
    except InputErrors as error:
        text = control_error_message(" ".join(error.errors.values())).text
    except ValueError as error:
        text = control_error_message(str(error)).text
    current = (await backend.run(backend.controls.rules, subject.symbol))[subject.rule]
    typed = submitted(view, BlockId.THRESHOLD, ModalAction.THRESHOLD)
    await client.views_update(
        view_id=view["id"],
        hash=view.get("hash"),
        view=threshold_modal(
            subject,
            current,
            threshold_pct=_float_or_none(typed),
            window=submitted(view, BlockId.WINDOW, ModalAction.WINDOW),
            preview=text,
        ),
    )


async def threshold_submitted(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    backend: Backend = context["backend"]
    subject: ModalSubject = context["subject"]
    try:
        threshold_pct, window_seconds = threshold_inputs(body["view"], subject.rule)
    except InputErrors as error:
        await ack(response_action="errors", errors=error.errors)
        return
    await ack()
    if (refusal := await authority.may_change(backend, client, body, subject.channel)) is not None:
        await _tell(client, subject, body["user"]["id"], refusal)
        return
    request = ThresholdRequest(
        subject.symbol, subject.rule, {"threshold_pct": threshold_pct, "window_seconds": window_seconds}
    )
    message, changed = await backend.run(answers.set_threshold, backend, request, actor(body))
    await _confirm(client, subject, body["user"]["id"], message, changed)


async def mute_submitted(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    backend: Backend = context["backend"]
    subject: ModalSubject = context["subject"]
    view = body["view"]
    try:
        duration = picked_duration(submitted(view, BlockId.DURATION, ModalAction.DURATION) or "")
    except ValueError as error:
        await ack(response_action="errors", errors={BlockId.DURATION: str(error)})
        return
    await ack()
    if (refusal := await authority.may_change(backend, client, body, subject.channel)) is not None:
        await _tell(client, subject, body["user"]["id"], refusal)
        return
    reason = submitted(view, BlockId.REASON, ModalAction.REASON) or ""
    message, changed = await backend.run(
        answers.mute_until, backend, subject.symbol, actor(body), datetime.now(UTC) + duration, reason
    )
    await _confirm(client, subject, body["user"]["id"], message, changed)


# --- storm buttons --------------------------------------------------------------------------------


async def storm_acknowledge_all(
    body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Acknowledge every member, then redraw the grouped message and say so in its thread."""
    backend: Backend = context["backend"]
    if (refusal := await authority.may_acknowledge(backend, client, body)) is not None:
        await respond(**refusal.payload(), response_type="ephemeral", replace_original=False)
        return
    who = actor(body)

    def acknowledge_all() -> tuple[int, SlackRef]:
        done = 0
        for anomaly_id in context["storm_members"]:
            try:
                anomalies.acknowledge(backend.es, backend.indices, anomaly_id, who.id or who.name)
            except LookupError:
                continue  # alerted but not stored yet: its entry in the storm stays as it is
            done += 1
        return done, backend.messages.render_storm(context["storm_id"])  # reads the acknowledgements back

    done, ref = await backend.run(acknowledge_all)
    await client.chat_postMessage(
        channel=ref.channel, thread_ts=ref.ts, **storm_acknowledged_message(done, body["user"]["id"]).payload()
    )


async def storm_mute_all(
    body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Mute every symbol of the storm for an hour (each change audited), and say so in the thread."""
    backend: Backend = context["backend"]
    if not await _allowed(backend, body, respond, context):
        return
    storm_id: str = context["storm_id"]
    who, until = actor(body), datetime.now(UTC) + STORM_MUTE

    def mute_all() -> list[str]:
        symbols = sorted({anomaly.symbol for anomaly in storms.members(backend.redis, storm_id)})
        for symbol in symbols:
            backend.controls.mute(symbol, who, until=until, reason=render(ACTIONS, "storm_mute_reason"))
        return symbols

    symbols = await backend.run(mute_all)
    channel, ts = context["message_ref"]
    await client.chat_postMessage(
        channel=channel, thread_ts=ts, **storm_muted_message(symbols, until, body["user"]["id"]).payload()
    )


async def apply_suggestion(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """Apply a threshold `/threshold SYMBOL suggest` offered: gated and audited like any change, told in the
    channel."""
    await ack()
    backend: Backend = context["backend"]
    channel = (body.get("channel") or {}).get("id")
    if (refusal := await authority.may_change(backend, context.client, body, channel)) is not None:
        await respond(**refusal.payload(), response_type="ephemeral", replace_original=False)
        return
    try:  # a forged value gets nowhere: Controls checks the rule and the threshold like any change
        symbol, rule, threshold = element_value(body).split("|")
        request = ThresholdRequest(normalise_symbol(symbol), cast(RuleName, rule), {"threshold_pct": float(threshold)})
    except ValueError:
        await respond(**control_error_message("that is not a suggestion").payload(), response_type="ephemeral")
        return
    message, changed = await backend.run(answers.set_threshold, backend, request, actor(body))
    await respond(**message.payload(), response_type="in_channel" if changed else "ephemeral", replace_original=False)


def configure(app: AsyncApp) -> None:
    app.action(AlertAction.ACKNOWLEDGE, middleware=[load_alert])(acknowledge)
    app.action(AlertAction.ACKNOWLEDGE_AS, middleware=[load_alert])(acknowledge)
    app.action(AlertAction.MUTE, middleware=[load_alert])(mute)
    app.action(AlertAction.HISTORY, middleware=[load_alert])(show_history)
    app.action(AlertAction.ADJUST_THRESHOLD, middleware=[load_alert])(adjust_threshold)
    app.action(AlertAction.STORM_ACKNOWLEDGE_ALL, middleware=[load_storm])(storm_acknowledge_all)
    app.action(AlertAction.STORM_MUTE_ALL, middleware=[load_storm])(storm_mute_all)
    app.action(ModalAction.PREVIEW, middleware=[load_modal_subject])(preview_in_modal)
    app.action(SuggestionAction.APPLY)(apply_suggestion)
    app.view(ModalCallback.THRESHOLD, middleware=[load_modal_subject])(threshold_submitted)
    app.view(ModalCallback.MUTE, middleware=[load_modal_subject])(mute_submitted)


# --- pure helpers ---------------------------------------------------------------------------------


class InputErrors(ValueError):
    """Modal input Slack should show next to the fields (block id -> message)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def threshold_inputs(view: dict[str, Any], rule: RuleName) -> tuple[float, int]:
    """(threshold, window seconds) typed in the threshold modal; InputErrors says which field is wrong.

    Pure (the bounds are `pipeline.rules`', the ones Controls applies), so a submission's errors are found
    and shown next to their fields before the ack, with no query first.
    """
    errors: dict[str, str] = {}
    threshold = _float_or_none(submitted(view, BlockId.THRESHOLD, ModalAction.THRESHOLD))
    if threshold is None or threshold < 0:
        errors[BlockId.THRESHOLD] = render(ACTIONS, "threshold_error")
    elif problem := threshold_problem(rule, threshold):
        errors[BlockId.THRESHOLD] = problem
    try:
        window = round(parse_seconds(submitted(view, BlockId.WINDOW, ModalAction.WINDOW) or "", bare_unit="m"))
        if not 0 < window <= MAX_WINDOW_SECONDS:
            raise ValueError(f"a window is longer than zero and at most {format_duration(MAX_WINDOW_SECONDS)}")
    except ValueError as error:
        errors[BlockId.WINDOW] = str(error)
    if errors:
        raise InputErrors(errors)
    return threshold, window  # type: ignore[return-value]  # both set: any failure raised InputErrors above


def mute_end(choice: MuteChoice, now: datetime) -> datetime:
    """1 h from now, or the next midnight UTC for "until tomorrow"."""
    if choice is MuteChoice.ONE_HOUR:
        return now + timedelta(hours=1)
    if choice is MuteChoice.UNTIL_TOMORROW:
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    raise ValueError(f"{choice} has no fixed end; it opens the modal")


def _float_or_none(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


async def _allowed(backend: Backend, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> bool:
    channel, _ = context["message_ref"]
    refusal = await authority.may_change(backend, context.client, body, channel)
    if refusal is not None:
        await respond(**refusal.payload(), response_type="ephemeral", replace_original=False)
    return refusal is None


async def _confirm(
    client: AsyncWebClient, subject: ModalSubject, user_id: str, message: Message, changed: bool
) -> None:
    """A change goes to the alert's thread for everyone; a refusal or an error only to the user."""
    if changed and subject.channel and subject.ts:
        await client.chat_postMessage(channel=subject.channel, thread_ts=subject.ts, **message.payload())
    else:
        await _tell(client, subject, user_id, message)


async def _tell(client: AsyncWebClient, subject: ModalSubject, user_id: str, message: Message) -> None:
    if subject.channel:
        await client.chat_postEphemeral(channel=subject.channel, user=user_id, **message.payload())
