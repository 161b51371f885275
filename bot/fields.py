"""Reusable modal inputs: a duration picker (1 h … 2 weeks), a reason, a threshold and a window."""

from __future__ import annotations

from datetime import timedelta

from slack_sdk.models.blocks import (
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)

from bot.enums import BlockId, ModalAction
from bot.texts import ACTIONS, render
from pipeline.durations import parse_duration
from pipeline.mutes import MAX_REASON_CHARS

DURATIONS = ("1h", "4h", "8h", "1d", "3d", "1w", "2w")


def duration_picker(initial: str = "1h") -> InputBlock:
    options = [Option(value=value, label=_label(value)) for value in DURATIONS]
    return InputBlock(
        block_id=BlockId.DURATION,
        label=render(ACTIONS, "duration_label"),
        element=StaticSelectElement(
            action_id=ModalAction.DURATION,
            options=options,
            initial_option=next(o for o in options if o.value == initial),
        ),
    )


def reason_input() -> InputBlock:
    return InputBlock(
        block_id=BlockId.REASON,
        label=render(ACTIONS, "reason_label"),
        optional=True,
        hint=render(ACTIONS, "reason_hint"),
        element=PlainTextInputElement(action_id=ModalAction.REASON, max_length=MAX_REASON_CHARS),
    )


def threshold_input(rule: str, initial: float) -> InputBlock:
    return InputBlock(
        block_id=BlockId.THRESHOLD,
        label=render(ACTIONS, "threshold_label", rule),
        element=NumberInputElement(
            action_id=ModalAction.THRESHOLD, is_decimal_allowed=True, initial_value=f"{initial:g}", min_value="0"
        ),
    )  # the rule's own bounds: Controls


def window_input(initial: str) -> InputBlock:
    return InputBlock(
        block_id=BlockId.WINDOW,
        label=render(ACTIONS, "window_label"),
        hint=render(ACTIONS, "window_hint"),
        element=PlainTextInputElement(action_id=ModalAction.WINDOW, initial_value=initial, max_length=20),
    )


def picked_duration(value: str) -> timedelta:
    """The picker's value back to a duration (only its own options are accepted)."""
    if value not in DURATIONS:
        raise ValueError(f"not one of the offered durations: {value!r}")
    return parse_duration(value)


def _label(value: str) -> str:
    return render(ACTIONS, "duration_option", int(value[:-1]), value[-1])
