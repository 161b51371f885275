"""Block Kit answers of the slash commands and buttons, built with slack_sdk models (words: templates/).

Every builder returns a `Message` (fallback text + blocks). Building through the models means a block
over Slack's limits fails here, in tests, and never in Slack; long lists are cut to stay under them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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

from bot.enums import SuggestionAction
from bot.texts import ACTIONS, COMMANDS, render
from pipeline.alerting.messages import MAX_BLOCKS, MAX_HEADER_CHARS, MAX_SECTION_CHARS, checked, fit
from pipeline.audit import Change
from pipeline.controls import RuleView
from pipeline.detect import backtest, tuning
from pipeline.durations import format_duration
from pipeline.groups import Group
from pipeline.history import UnknownSymbol, WindowSummary
from pipeline.mutes import Mute, Window
from pipeline.schema import Anomaly

MAX_LISTED = 25
MAX_ACTIONS = 25  # elements in one actions block (Slack's limit)


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[Block]

    def payload(self) -> dict[str, Any]:
        """Keyword arguments for `respond()`, `ack()` or `chat.postMessage`, after Block Kit validation."""
        return {"text": self.text, "blocks": [block.to_dict() for block in checked(self.blocks)]}


def plain(text: str) -> Message:
    """A short answer: one mrkdwn section."""
    return Message(_fallback(text), [_section(text)])


# --- generic answers ------------------------------------------------------------------------------


def help_message(command: str) -> Message:
    return plain(render(COMMANDS, "help", command))


def usage_message(command: str, reason: str) -> Message:
    return plain(render(COMMANDS, "bad_input", command, reason))


def unknown_symbol_message(error: UnknownSymbol) -> Message:
    return plain(render(COMMANDS, "unknown_symbol", error.symbol, error.suggestions))


def refused_message(users: Sequence[str], channels: Sequence[str]) -> Message:
    return plain(render(COMMANDS, "refused", list(users), list(channels)))


def not_this_message() -> Message:
    return plain(render(ACTIONS, "not_this_message"))


def slow_down_message(wait_seconds: float) -> Message:
    return plain(render(COMMANDS, "slow_down", format_duration(max(1, round(wait_seconds)))))


def guest_refused_message() -> Message:
    return plain(render(COMMANDS, "guest_refused"))


def unchecked_message() -> Message:
    return plain(render(COMMANDS, "unchecked"))


def failure_message() -> Message:
    return plain(render(COMMANDS, "failed"))


def control_error_message(reason: str) -> Message:
    return plain(render(COMMANDS, "control_error", reason))


# --- /price and the History button ----------------------------------------------------------------


def price_message(
    summary: WindowSummary,
    window: timedelta,
    anomalies: Sequence[Anomaly],
    *,
    more: bool,
    context: str | None = None,
    market: str = "",
) -> Message:
    header = render(COMMANDS, "price_header", summary, window)
    blocks: list[Block] = [HeaderBlock(text=fit(header, MAX_HEADER_CHARS))]
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=context)]))
    blocks += [
        _section(render(COMMANDS, "price_summary", summary)),
        ContextBlock(elements=[MarkdownTextObject(text=render(COMMANDS, "price_window", summary, market))]),
        _section(render(COMMANDS, "anomalies_in_window", list(anomalies[:MAX_LISTED]), more)),
    ]
    return Message(header, blocks)


def no_ticks_message(symbol: str, window: timedelta, end: Any) -> Message:
    return plain(render(COMMANDS, "no_ticks_in_window", symbol, window, end))


# --- /anomalies -----------------------------------------------------------------------------------


def anomalies_message(
    symbol: str | None, window: timedelta, items: Sequence[tuple[Anomaly, str | None]], *, truncated: bool
) -> Message:
    if not items:
        return plain(render(COMMANDS, "no_anomalies", symbol, window))
    header = render(COMMANDS, "anomalies_header", symbol, window)
    lines = [f"• {render(COMMANDS, 'anomaly_item', anomaly, link)}" for anomaly, link in items[:MAX_LISTED]]
    blocks: list[Block] = [HeaderBlock(text=fit(header, MAX_HEADER_CHARS)), *_sections(lines)]
    if truncated or len(items) > MAX_LISTED:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=render(COMMANDS, "list_truncated", min(len(items), MAX_LISTED)))]
            )
        )
    return Message(header, blocks)


# --- mutes ----------------------------------------------------------------------------------------


def mutes_message(mutes: Sequence[Mute], windows: Sequence[Window] = ()) -> Message:
    if not mutes and not windows:
        return plain(render(COMMANDS, "no_mutes"))
    header = render(COMMANDS, "mutes_header", len(mutes) + len(windows))
    now = datetime.now(UTC)
    lines = [f"• {render(COMMANDS, 'mute_line', mute, now)}" for mute in mutes[: MAX_LISTED * 4]]
    lines += [f"• {render(COMMANDS, 'window_line', window, now)}" for window in windows[: MAX_LISTED * 4]]
    return Message(header, [HeaderBlock(text=header), *_sections(lines)])


def muted_message(change: Change, user_id: str) -> Message:
    return plain(render(COMMANDS, "muted", change, user_id))


def unmuted_message(symbol: str, user_id: str) -> Message:
    return plain(render(COMMANDS, "unmuted", symbol, user_id))


def not_muted_message(symbol: str) -> Message:
    return plain(render(COMMANDS, "not_muted", symbol))


# --- groups -------------------------------------------------------------------------------------


def groups_message(groups: Sequence[Group]) -> Message:
    return plain(render(COMMANDS, "groups", groups))


def group_message(group: Group, views: Iterable[RuleView], mute: Mute | None) -> Message:
    return plain(render(COMMANDS, "group", group, [v for v in views if v.overridden], mute))


def group_changed_message(change: Change, user_id: str) -> Message:
    return plain(render(COMMANDS, "group_changed", change, user_id))


# --- thresholds -----------------------------------------------------------------------------------


def rules_message(symbol: str, views: Iterable[RuleView]) -> Message:
    return plain(render(COMMANDS, "rules", symbol, list(views)))


def rule_changed_message(change: Change, user_id: str) -> Message:
    return plain(render(COMMANDS, "rule_changed", change, user_id))


def suggestions_message(symbol: str, found: Sequence[tuning.Suggestion]) -> Message:
    """The suggestions in words, with an Apply button under each one that changes the rule."""
    text = render(COMMANDS, "suggestions", symbol, list(found))
    blocks: list[Block] = [_section(text)]
    buttons = [
        ButtonElement(
            text=render(COMMANDS, "apply_suggestion", s.rule, s.suggested),
            action_id=SuggestionAction.APPLY,
            value=f"{symbol}|{s.rule}|{s.suggested:g}",
        )
        for s in found
        if s.changes and s.suggested is not None
    ]
    if buttons:
        blocks.append(ActionsBlock(elements=buttons[:MAX_ACTIONS]))
    return Message(_fallback(text), blocks)


def preview_message(tried: backtest.Preview) -> Message:
    return plain(backtest.preview_text(tried))


# --- alert buttons --------------------------------------------------------------------------------


def alert_gone_message() -> Message:
    return plain(render(ACTIONS, "alert_gone"))


def storm_gone_message() -> Message:
    return plain(render(ACTIONS, "storm_gone"))


def history_context(anomaly: Anomaly) -> str:
    return render(ACTIONS, "history_context", anomaly)


def storm_acknowledged_message(count: int, user_id: str) -> Message:
    return plain(render(ACTIONS, "storm_acknowledged", count, user_id))


def storm_muted_message(symbols: Sequence[str], until: Any, user_id: str) -> Message:
    return plain(render(ACTIONS, "storm_muted", list(symbols), until, user_id))


# --- helpers --------------------------------------------------------------------------------------


def _section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=fit(text, MAX_SECTION_CHARS)))


def _sections(lines: Sequence[str]) -> list[Block]:
    """Lines packed into as few sections as Slack's 3,000 characters allow."""
    sections: list[Block] = []
    current: list[str] = []
    for line in lines:
        if current and len("\n".join([*current, line])) > MAX_SECTION_CHARS:
            sections.append(_section("\n".join(current)))
            current = []
        current.append(line)
    if current:
        sections.append(_section("\n".join(current)))
    return sections[: MAX_BLOCKS - 3]


def _fallback(text: str) -> str:
    """Notification text: the first line, without mrkdwn emphasis."""
    return text.splitlines()[0].replace("*", "")[:300] if text else ""
