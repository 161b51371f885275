"""Alert messages: Block Kit structure built with slack_sdk models, words from Jinja2 templates."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from slack_sdk.models.blocks import Block, ContextBlock, HeaderBlock, MarkdownTextObject, SectionBlock

from pipeline.schema import Anomaly

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def duration(seconds: int) -> str:
    """300 -> '5 min', 90 -> '90 s', 3600 -> '1 h'."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def clock(value: datetime) -> str:
    return f"{value:%H:%M:%S}"


@lru_cache
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False)
    env.filters.update(duration=duration, clock=clock)
    return env


def _template(name: str) -> Template:
    return _environment().get_template(name)


def alert_text(anomaly: Anomaly) -> str:
    """One line for notifications, logs and Slack's fallback `text`."""
    return _template("alert_text.j2").render(a=anomaly).strip()


def alert_blocks(anomaly: Anomaly) -> list[Block]:
    module = _template("slack_alert.j2").make_module({"a": anomaly})
    return [
        HeaderBlock(text=str(module.header()).strip()),
        SectionBlock(text=MarkdownTextObject(text=str(module.summary()).strip())),
        ContextBlock(elements=[MarkdownTextObject(text=str(module.context()).strip())]),
    ]
