"""The daily digest in words and a picture: Block Kit for Slack, the plain-text fallback, the chart, and the
`digest.daily` event. Pure: a `pipeline.digest.Digest` in, text, JSON or PNG bytes out; the words are in
`templates/digest_slack.j2` and `templates/digest_text.j2`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from pipeline.alerting.messages import template
from pipeline.digest.summary import Digest
from pipeline.durations import format_duration
from pipeline.rule_words import format_threshold
from pipeline.schema import iso
from pipeline.templating import macro

SECTION_CHARS = 3000  # Slack's limit per section text
HEADER_CHARS = 150
ANOMALY_LINES = 15
MUTE_LINES = 15


def _context(digest: Digest) -> dict[str, Any]:
    zone = ZoneInfo(digest.tz)

    def local(value: datetime) -> str:
        return f"{value.astimezone(zone):%H:%M}"

    def day_time(value: datetime) -> str:
        return f"{value.astimezone(zone):%a %d %b %H:%M}"

    def age(value: datetime) -> str:
        return format_duration(max(0.0, (digest.end - value).total_seconds()))

    return {
        "d": digest,
        "local": local,
        "day_time": day_time,
        "age": age,
        "threshold": lambda value, rule: format_threshold(rule, value),
        "noun": noun,
        "anomaly_lines": ANOMALY_LINES,
        "mute_lines": MUTE_LINES,
    }


def noun(count: int, one: str, many: str | None = None) -> str:
    """The word for `count` things: noun(1, "tick") -> "tick", noun(2, "anomaly", "anomalies") -> "anomalies"."""
    return one if count == 1 else many or f"{one}s"


def fit(text: str, limit: int = SECTION_CHARS) -> str:
    """Cut to Slack's limit on whole lines, saying how many were left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    lines = text.splitlines()
    while lines:
        lines.pop()
        note = f"… {len(text.splitlines()) - len(lines)} more lines"
        candidate = "\n".join([*lines, note])
        if len(candidate) <= limit:
            return candidate
    return text[: limit - 1] + "…"


def blocks(digest: Digest) -> list[Block]:
    """Block Kit for Slack: header, overview, then one section per part that has something to say."""
    module = template("digest_slack.j2").make_module(_context(digest))
    result: list[Block] = [
        HeaderBlock(text=fit(macro(module, "header"), HEADER_CHARS)),
        SectionBlock(text=MarkdownTextObject(text=fit(macro(module, "overview")))),
    ]
    for part in ("movers", "groups", "extremes", "anomalies", "noisiest", "mutes", "health"):
        text = macro(module, part).strip()
        if text:
            result += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text=fit(text)))]
    result.append(ContextBlock(elements=[MarkdownTextObject(text=fit(macro(module, "footer")))]))
    return result


def text(digest: Digest) -> str:
    """The plain-text digest: Slack's fallback `text`, the terminal without Rich, logs."""
    return template("digest_text.j2").render(_context(digest)).strip()


def chart(digest: Digest) -> bytes | None:
    """PNG of the top movers' paths (100 = the open), or None when no symbol traded."""
    from pipeline.charts import normalised_paths

    if not digest.paths:
        return None
    return normalised_paths(digest.paths, title=chart_title(digest), tz=digest.tz)


def chart_title(digest: Digest) -> str:
    return macro(template("digest_text.j2").make_module(_context(digest)), "chart_title").strip()


def message(digest: Digest) -> dict[str, Any]:
    """What chat.postMessage / chat.update send, as JSON (small enough to pass between DAG tasks)."""
    return {"text": fit(text(digest), 4000), "blocks": [block.to_dict() for block in blocks(digest)]}


def event(digest: Digest) -> dict[str, Any]:
    """The `digest.daily` event in the envelope every channel carries (docs/architecture.md, Contracts)."""
    return {
        "type": "digest.daily",
        "id": digest.event_id,
        "timestamp": iso(digest.generated_at),
        "data": digest.model_dump(mode="json", exclude={"paths", "timings_ms"}),
    }
