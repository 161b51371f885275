"""Personal watch DMs: Block Kit built with slack_sdk models, words from templates (slack_alert.j2 for the alert
itself, slack_watch.j2 for what is personal). Pure: the anomaly and what its watch says in, text and blocks out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from pipeline.alerting.actions import WatchAction
from pipeline.alerting.messages import (
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    AlertContext,
    alert_text,
    checked,
    fit,
    template,
)
from pipeline.schema import Anomaly
from pipeline.templating import macro

CATCH_UP_WITH_BUTTONS = 5  # the first alerts of a catch-up DM get their own buttons; the rest are lines
CATCH_UP_LINES = 30


def watch_message(anomaly: Anomaly, says: str, *, unwatched: bool = False) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of one watch alert's DM in its current state."""
    alert = template("slack_alert.j2").make_module({"a": anomaly, "c": AlertContext()})
    words = template("slack_watch.j2").make_module({"a": anomaly, "w": says})
    blocks: list[Block] = [
        HeaderBlock(text=fit(macro(alert, "header").strip(), MAX_HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=fit(macro(alert, "facts").strip(), MAX_SECTION_CHARS))),
    ]
    state = macro(words, "unwatched").strip() if unwatched else macro(alert, "state").strip()
    if state:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(state, MAX_SECTION_CHARS))))
    if buttons := _buttons(anomaly, words, unwatched=unwatched):
        blocks.append(ActionsBlock(block_id=f"watch:{anomaly.id}"[:255], elements=buttons))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=macro(words, "footer").strip())]))
    return alert_text(anomaly), checked(blocks)


def catch_up_message(held: Sequence[tuple[Anomaly, str]], quiet: str) -> tuple[str, list[Block]]:
    """(text, blocks) of the DM after quiet hours: every alert they held (newest state), the first with buttons."""
    words = template("slack_watch.j2").make_module({"a": None, "w": ""})
    count = len(held)
    blocks: list[Block] = [
        HeaderBlock(text=fit(macro(words, "catch_up_header", count).strip(), MAX_HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=macro(words, "catch_up_intro", count, quiet).strip())),
    ]
    for anomaly, says in held[:CATCH_UP_WITH_BUTTONS]:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(_line(words, anomaly, says), MAX_SECTION_CHARS))))
        if buttons := _buttons(anomaly, words):
            blocks.append(ActionsBlock(block_id=f"watch:{anomaly.id}"[:255], elements=buttons))
    rest = held[CATCH_UP_WITH_BUTTONS:]
    if rest:
        lines = "\n".join(_line(words, a, says) for a, says in rest[:CATCH_UP_LINES])
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(lines, MAX_SECTION_CHARS))))
    if len(rest) > CATCH_UP_LINES:
        more = macro(words, "more", len(rest) - CATCH_UP_LINES).strip()
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=more)]))
    return macro(words, "catch_up_header", count).strip(), checked(blocks)


def _line(words: Any, anomaly: Anomaly, says: str) -> str:
    return f"{macro(words, 'line', anomaly).strip()} · `{says}`"


def _buttons(anomaly: Anomaly, words: Any, *, unwatched: bool = False) -> list[Any]:
    elements: list[Any] = []
    if anomaly.status != "resolved" and anomaly.acknowledged_by is None:
        elements.append(
            ButtonElement(
                text=macro(words, "label", "acknowledge").strip(),
                action_id=WatchAction.ACKNOWLEDGE,
                value=anomaly.id,
                style="primary",
            )
        )
    if not unwatched:
        elements.append(
            ButtonElement(
                text=macro(words, "label", "unwatch").strip(), action_id=WatchAction.UNWATCH, value=anomaly.id
            )
        )
    return elements
