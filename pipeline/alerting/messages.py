"""Alert messages: Block Kit structure built with slack_sdk models, words from Jinja2 templates.

Pure functions: an anomaly (and what Elasticsearch says around it, `AlertContext`) in, Slack's fallback
text and blocks out, checked against Slack's limits so a message is never refused. The same builders serve
the pipeline (posting and editing alerts) and the bot (re-rendering a message after a button).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, Template
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    SectionBlock,
    StaticSelectElement,
)

from pipeline.alerting.actions import AlertAction, MuteChoice, reason_value
from pipeline.alerting.market_moves import MarketMove, market_move
from pipeline.schema import AckReason, Anomaly
from pipeline.templating import Markup, environment, macro

# Slack's limits (see docs/architecture.md): beyond them chat.postMessage/chat.update answer invalid_blocks.
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_BUTTON_CHARS = 75
MAX_TEXT_CHARS = 4000  # the fallback `text` Slack shows in notifications
STORM_LINES = 40  # members listed in a storm message; the rest are counted
STORM_LINES_PER_SECTION = 20
OWN_MOVERS_WITH_BUTTONS = 5  # a market move's first movers on their own get their own buttons
FOLLOWER_LINES = 30
SPARK_BARS = "▁▂▃▄▅▆▇█"
MINUS = "\u2212"
TIMES = "\u00d7"
SIGMA = "\u03c3"
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{6,}$")


@dataclass(frozen=True)
class AlertContext:
    """What Elasticsearch says around an anomaly (see pipeline.alerts.alert_context): the "why" of a message."""

    sparkline: list[float] = field(default_factory=list)  # evenly spaced prices over the window
    window_volume: float | None = None  # traded in the window up to the peak
    usual_volume: float | None = None  # the symbol's mean volume per window of that length, last 7 days
    earlier_alerts_24h: int = 0  # this symbol's anomalies in the 24 h before this one


@dataclass(frozen=True)
class StormView:
    """A storm's grouped message: its members (any order; shown largest move first)."""

    storm_id: str
    started_at: datetime
    threshold: int
    members: list[Anomaly]
    window_seconds: int = 60  # more than `threshold` alerts within this long started it


def span(seconds: float) -> str:
    """An elapsed time as people say it: 45 s, 4 min (rounded), 1 h 5 min, 2 d 3 h."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def pct(value: float, signed: bool = True) -> str:
    """-7.91 -> '\u22127.9 %' (a true minus sign, as in print), 6.2 -> '+6.2 %'; unsigned for thresholds."""
    text = f"{abs(value):.1f} %"
    if not signed:
        return text
    return (MINUS if value < 0 else "+") + text


def price(value: float) -> str:
    return f"{value:,.2f}" if value >= 1 else f"{value:.6g}"


def count(value: float) -> str:
    return f"{value:,.0f}"


def clock(value: datetime, seconds: bool = True) -> str:
    return f"{value:%H:%M:%S}" if seconds else f"{value:%H:%M}"


def sparkline(points: Sequence[float]) -> str:
    """Unicode block sparkline, one bar per point (flat series: middle bars)."""
    if not points:
        return ""
    low, high = min(points), max(points)
    if high == low:
        return SPARK_BARS[3] * len(points)
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round((p - low) / (high - low) * top)] for p in points)


def arrow(anomaly: Anomaly) -> str:
    """📊 for a volume spike (its price may barely move), else 📉/📈 by the move's direction."""
    if anomaly.rule == "volume":
        return "📊"
    return "📉" if anomaly.change_pct < 0 else "📈"


def move(anomaly: Anomaly, peak: bool = True) -> str:
    """What the rule saw, in its own unit: `-7.9 %`, `-2.3 % (4.6 sigma)`, `volume 6.3x usual (+0.3 %)`.

    `peak`: the episode's largest price move so far (lists), else the move when it was detected (headers).
    """
    change = pct(anomaly.peak_change_pct if peak else anomaly.change_pct)
    if anomaly.rule == "volume":
        ratio = f"{anomaly.volume_ratio:.1f}{TIMES} usual" if anomaly.volume_ratio is not None else "spike"
        return f"volume {ratio} ({change})"
    if anomaly.rule == "zscore" and anomaly.zscore is not None:
        return f"{change} ({abs(anomaly.zscore):.1f} {SIGMA})"
    return change


def who(name: str) -> str:
    """A Slack user id renders as a mention (<@U123>), anything else as written (escaped when printed)."""
    return Markup(f"<@{name}>") if _SLACK_USER.fullmatch(name) else name


@lru_cache
def _environment() -> Environment:
    return environment(
        dict(
            span=span, pct=pct, price=price, count=count, clock=clock, spark=sparkline, who=who, arrow=arrow, move=move
        )
    )


def template(name: str) -> Template:
    """A template of `templates/` with the shared filters (price, pct, count, span, ...): for every module that
    words a message, so they all load templates one way."""
    return _environment().get_template(name)


def webhook_disabled_text(host: str, subscription_id: str, reason: str) -> str:
    """The Slack notice that a webhook endpoint was disabled, and how to bring it back. It names the endpoint's
    host only: a URL's path or query may carry a receiver's token."""
    return template("webhook_disabled.j2").render(host=host, id=subscription_id, reason=reason).strip()


def feed_text(kind: str, *args: Any) -> str:
    """A feed health message (templates/feeds.j2): `stale` or `recovered` of one FeedEvent, or a calendar's
    `outage` (calendar, silent symbols, watched total, since, back)."""
    return macro(template("feeds.j2").make_module(), kind, *args).strip()


def alert_text(anomaly: Anomaly) -> str:
    """One line for notifications, logs and Slack's fallback `text`."""
    return template("alert_text.j2").render(a=anomaly).strip()[:MAX_TEXT_CHARS]


def alert_message(anomaly: Anomaly, context: AlertContext) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of an alert in its current state.

    Open: facts, sparkline, the "why" and every action. Acknowledged: says by whom and when, no Acknowledge
    button. Resolved: says it recovered and after how long; only History stays. Muted: says so.
    """
    words = template("slack_alert.j2").make_module({"a": anomaly, "c": context})
    blocks: list[Block] = [
        HeaderBlock(text=fit(macro(words, "header").strip(), MAX_HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=fit(macro(words, "facts").strip(), MAX_SECTION_CHARS))),
    ]
    for name in ("chart", "why", "state"):
        if text := macro(words, name).strip():
            blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(text, MAX_SECTION_CHARS))))
    if actions := _alert_actions(anomaly, words):
        blocks.append(ActionsBlock(block_id=f"alert:{anomaly.id}"[:255], elements=actions))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=macro(words, "context").strip())]))
    return alert_text(anomaly), checked(blocks)


def _alert_actions(anomaly: Anomaly, words: Any) -> list[Any]:
    def button(action: AlertAction, name: str, style: str | None = None) -> ButtonElement:
        return ButtonElement(
            text=fit(macro(words, "label", name).strip(), MAX_BUTTON_CHARS),
            action_id=action,
            value=anomaly.id,
            style=style,
        )

    history = button(AlertAction.HISTORY, "history")
    # Why it was acknowledged tunes thresholds (/threshold SYMBOL suggest), so it is asked even once resolved
    reasons = OverflowMenuElement(
        action_id=AlertAction.ACKNOWLEDGE_AS,
        options=[
            Option(value=reason_value(anomaly.id, r), text=macro(words, "ack_label", r.label).strip())
            for r in AckReason
        ],
    )
    asking = [reasons] if anomaly.ack_reason is None else []
    if anomaly.status == "resolved":
        return [history, *asking]
    elements: list[Any] = []
    if anomaly.acknowledged_by is None:
        elements.append(button(AlertAction.ACKNOWLEDGE, "acknowledge", "primary"))
    elements += asking
    if not anomaly.muted:
        elements.append(_mute_menu(anomaly, words))
    elements += [history, button(AlertAction.ADJUST_THRESHOLD, "adjust_threshold")]
    return elements


def storm_message(storm: StormView) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of a storm's grouped message: a line per member, largest move first, the
    first STORM_LINES of them (in sections of STORM_LINES_PER_SECTION), the rest counted, and the
    Acknowledge-all / Mute-all buttons (value: the storm id).

    When most members only followed their benchmark (pipeline.alerting.market_moves), it is a market move: the
    benchmark's move and how many followed in the header, the symbols that moved on their own first, each with
    its own Acknowledge and Mute, then the followers."""
    if (moved := market_move(storm.members)) is not None:
        return _market_move_message(storm, moved)
    members = sorted(storm.members, key=lambda a: (-abs(a.peak_change_pct), a.symbol))
    view = StormView(storm.storm_id, storm.started_at, storm.threshold, members, storm.window_seconds)
    words = template("slack_storm.j2").make_module({"s": view})
    blocks: list[Block] = [
        HeaderBlock(text=fit(macro(words, "header").strip(), MAX_HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=macro(words, "intro").strip())),
        *_member_lines(words, members),
        _storm_actions(storm, words),
    ]
    return fit(macro(words, "text").strip(), MAX_TEXT_CHARS), checked(blocks)


def _member_lines(words: Any, members: Sequence[Anomaly], limit: int = STORM_LINES) -> list[Block]:
    """A line per member, the first `limit` in sections of STORM_LINES_PER_SECTION, the rest counted."""
    blocks: list[Block] = []
    shown = members[:limit]
    for start in range(0, len(shown), STORM_LINES_PER_SECTION):
        lines = "\n".join(macro(words, "line", a).strip() for a in shown[start : start + STORM_LINES_PER_SECTION])
        blocks.append(SectionBlock(text=MarkdownTextObject(text=fit(lines, MAX_SECTION_CHARS))))
    if len(members) > limit:
        blocks.append(
            ContextBlock(elements=[MarkdownTextObject(text=macro(words, "more", len(members) - limit).strip())])
        )
    return blocks


def _market_move_message(storm: StormView, moved: MarketMove) -> tuple[str, list[Block]]:
    words = template("slack_market_move.j2").make_module({"s": storm, "m": moved})
    blocks: list[Block] = [
        HeaderBlock(text=fit(macro(words, "header").strip(), MAX_HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=fit(macro(words, "intro").strip(), MAX_SECTION_CHARS))),
    ]
    for anomaly in moved.own[:OWN_MOVERS_WITH_BUTTONS]:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=fit(macro(words, "own", anomaly).strip(), MAX_SECTION_CHARS)))
        )
        if buttons := _member_actions(
            anomaly, template("slack_alert.j2").make_module({"a": anomaly, "c": AlertContext()})
        ):
            blocks.append(ActionsBlock(block_id=f"alert:{anomaly.id}"[:255], elements=buttons))
    blocks += _member_lines(words, moved.own[OWN_MOVERS_WITH_BUTTONS:] + moved.followed, FOLLOWER_LINES)
    blocks.append(_storm_actions(storm, words))
    return fit(macro(words, "text").strip(), MAX_TEXT_CHARS), checked(blocks)


def _member_actions(anomaly: Anomaly, words: Any) -> list[Any]:
    """A mover's own Acknowledge and Mute in a market move message (while it is open and not yet so)."""
    if anomaly.status == "resolved":
        return []
    elements: list[Any] = []
    if anomaly.acknowledged_by is None:
        elements.append(
            ButtonElement(
                text=macro(words, "label", "acknowledge").strip(), action_id=AlertAction.ACKNOWLEDGE, value=anomaly.id
            )
        )
    if not anomaly.muted:
        elements.append(_mute_menu(anomaly, words))
    return elements


def _mute_menu(anomaly: Anomaly, words: Any) -> StaticSelectElement:
    return StaticSelectElement(
        action_id=AlertAction.MUTE,
        placeholder=macro(words, "label", "mute").strip(),
        options=[
            Option(value=choice.value_for(anomaly.id), text=macro(words, "label", choice.value).strip())
            for choice in MuteChoice
        ],
    )


def _storm_actions(storm: StormView, words: Any) -> ActionsBlock:
    return ActionsBlock(
        block_id=f"storm:{storm.storm_id}"[:255],
        elements=[
            ButtonElement(
                text=macro(words, "label", "acknowledge_all").strip(),
                action_id=AlertAction.STORM_ACKNOWLEDGE_ALL,
                value=storm.storm_id,
                style="primary",
            ),
            ButtonElement(
                text=macro(words, "label", "mute_all").strip(),
                action_id=AlertAction.STORM_MUTE_ALL,
                value=storm.storm_id,
                style="danger",
            ),
        ],
    )


def fit(text: str, limit: int) -> str:
    """Cut to Slack's limit (with an ellipsis) rather than have the whole message refused."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked(blocks: list[Block]) -> list[Block]:
    """The blocks, after slack_sdk's model validation and the limits it does not check itself."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: Slack takes at most {MAX_BLOCKS}")
    for block in blocks:
        block.validate_json()  # raises SlackObjectFormationError on a broken block or a text over its limit
        if isinstance(block, SectionBlock) and block.text and len(block.text.text) > MAX_SECTION_CHARS:
            raise ValueError(f"a section of {len(block.text.text)} chars: Slack takes {MAX_SECTION_CHARS}")
    return blocks
