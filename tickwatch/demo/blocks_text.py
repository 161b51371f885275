"""Slack Block Kit messages as Rich markup, so the demo can show in a terminal what Slack would display.

Pure functions (no I/O): header, section (text, fields), context, divider, image, and the interactive
elements of actions blocks (buttons with their style, menus with their options).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

RULE = "─" * 40
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]+))?>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]+))?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]+))?>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_CODE = re.compile(r"`([^`\n]+)`")
_BUTTON_STYLES = {"primary": "bold white on green", "danger": "bold white on red"}


def mrkdwn(text: str, users: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as Rich markup: *bold*, `code`, mentions (@name when `users` knows the id) and links."""
    users = users or {}
    text = _MENTION.sub(lambda m: "@" + (m.group(2) or users.get(m.group(1), m.group(1))), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = escape(html.unescape(text))
    text = _CODE.sub(r"[cyan]\1[/cyan]", text)
    return _BOLD.sub(r"[bold]\1[/bold]", text)


def _plain(obj: Mapping[str, Any] | None, users: Mapping[str, str]) -> str:
    if not obj:
        return ""
    return mrkdwn(obj["text"], users) if obj.get("type") == "mrkdwn" else escape(obj.get("text", ""))


def element_text(element: Mapping[str, Any], users: Mapping[str, str] | None = None) -> str:
    """One interactive element as it would look: a button, or a menu with its choices."""
    users = users or {}
    kind = element.get("type")
    if kind == "button":
        style = _BUTTON_STYLES.get(element.get("style", ""), "reverse")
        return f"[{style}] {_plain(element.get('text'), users)} [/]"
    if kind in {"static_select", "overflow"}:
        label = _plain(element.get("placeholder"), users) or "…"
        choices = " | ".join(_plain(option.get("text"), users) for option in element.get("options", []))
        return f"[reverse] {label} ▾ [/]" + (f" [dim]({choices})[/dim]" if choices else "")
    if kind == "image":
        return f"🖼 {escape(element.get('alt_text', ''))}"
    if kind in {"mrkdwn", "plain_text"}:
        return _plain(element, users)
    return f"[dim]({escape(str(kind))})[/dim]"


def block_text(block: Mapping[str, Any], users: Mapping[str, str] | None = None) -> str:
    """One block as Rich markup (may span several lines)."""
    users = users or {}
    kind = block.get("type")
    if kind == "header":
        return f"[bold]{_plain(block.get('text'), users)}[/bold]"
    if kind == "section":
        parts = [_plain(block.get("text"), users)] if block.get("text") else []
        parts += [_plain(field, users) for field in block.get("fields", [])]
        if accessory := block.get("accessory"):
            parts.append(element_text(accessory, users))
        return "\n".join(part for part in parts if part)
    if kind == "context":
        return "[dim]" + " · ".join(element_text(e, users) for e in block.get("elements", [])) + "[/dim]"
    if kind == "actions":
        return "  ".join(element_text(e, users) for e in block.get("elements", []))
    if kind == "divider":
        return f"[dim]{RULE}[/dim]"
    if kind == "image":
        return element_text(block, users)
    return f"[dim]({escape(str(kind))} block)[/dim]"


def blocks_text(blocks: list[Mapping[str, Any]], users: Mapping[str, str] | None = None) -> str:
    """A whole message's blocks as Rich markup, one block after the other."""
    return "\n".join(block_text(block, users) for block in blocks)


def action_ids(blocks: list[Mapping[str, Any]]) -> dict[str, str]:
    """action_id -> value (a button's value; a menu's first option value) of every interactive element."""
    found: dict[str, str] = {}
    for block in blocks:
        elements = block.get("elements", []) if block.get("type") == "actions" else [block.get("accessory") or {}]
        for element in elements:
            if action := element.get("action_id"):
                options = element.get("options") or [{}]
                found[action] = element.get("value") or options[0].get("value", "")
    return found
