"""The modals the alert buttons open (custom mute, adjust threshold), built with slack_sdk's View model.

What a modal acts on travels in its `private_metadata` as a `ModalSubject`, so the submission needs no
lookup before it is acknowledged, and the confirmation goes to the alert's thread.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot import fields
from bot.enums import BlockId, ModalAction, ModalCallback
from bot.texts import ACTIONS, render
from pipeline.controls import RuleView
from pipeline.durations import format_duration
from pipeline.schema import Anomaly, RuleName


@dataclass(frozen=True)
class ModalSubject:
    """The alert a modal belongs to, and where its message is (for the thread confirmation)."""

    anomaly_id: str
    symbol: str
    rule: RuleName
    channel: str | None
    ts: str | None

    @classmethod
    def of(cls, anomaly: Anomaly, channel: str | None, ts: str | None) -> ModalSubject:
        return cls(anomaly.id, anomaly.symbol, anomaly.rule, channel, ts)

    def metadata(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_metadata(cls, raw: str) -> ModalSubject:
        return cls(**json.loads(raw))


def mute_modal(subject: ModalSubject) -> View:
    return View(
        type="modal",
        callback_id=ModalCallback.MUTE,
        private_metadata=subject.metadata(),
        title=render(ACTIONS, "mute_title"),
        submit=render(ACTIONS, "save"),
        close=render(ACTIONS, "cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=render(ACTIONS, "mute_intro", subject.symbol))),
            fields.duration_picker(),
            fields.reason_input(),
        ],
    )


def threshold_modal(
    subject: ModalSubject,
    current: RuleView,
    *,
    threshold_pct: float | None = None,
    window: str | None = None,
    preview: str | None = None,
) -> View:
    """Prefilled with the current rule (or what was typed, when redrawn with a preview)."""
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=render(ACTIONS, "threshold_intro", subject.symbol, current))),
        fields.threshold_input(subject.rule, current.threshold_pct if threshold_pct is None else threshold_pct),
        fields.window_input(window or format_duration(current.window_seconds)),
        ActionsBlock(
            elements=[
                ButtonElement(
                    action_id=ModalAction.PREVIEW, text=render(ACTIONS, "preview_button"), value=subject.anomaly_id
                )
            ]
        ),
        ContextBlock(
            block_id=BlockId.PREVIEW, elements=[MarkdownTextObject(text=preview or render(ACTIONS, "preview_pending"))]
        ),
    ]
    return View(
        type="modal",
        callback_id=ModalCallback.THRESHOLD,
        private_metadata=subject.metadata(),
        title=render(ACTIONS, "threshold_title"),
        submit=render(ACTIONS, "save"),
        close=render(ACTIONS, "cancel"),
        blocks=blocks,
    )


def submitted(view: dict[str, Any], block_id: str, action_id: str) -> Any:
    """A value from a submitted (or previewed) modal's state: text, number or selected option value."""
    value = view.get("state", {}).get("values", {}).get(block_id, {}).get(action_id, {})
    if "selected_option" in value:
        return (value["selected_option"] or {}).get("value")
    return value.get("value")
