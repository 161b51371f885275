"""Every text people read is a Jinja2 template in `templates/`; this is how they are rendered, for Slack.

In Slack's `mrkdwn` only `&`, `<` and `>` are special. Every value a template prints is escaped (a Jinja2
`finalize`), so text that did not come from the code — a mute reason, a person's name, a symbol from a file —
shows `<!channel>` or `<https://evil.example|click>` as written instead of pinging a channel or disguising a
link. Slack syntax the code itself makes (a mention of a user id) is marked `Markup` (Jinja2's own marker, also
what its `safe` filter returns) and printed as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: str) -> str:
    """Text for Slack mrkdwn: `&`, `<` and `>` as entities, everything else as it is."""
    return text.translate(_ESCAPES)


def _finalize(value: Any) -> Any:
    return value if isinstance(value, Markup) or not isinstance(value, str) else escape(value)


def environment(filters: dict[str, Callable[..., Any]]) -> Environment:
    """A template environment over `templates/` with `filters`, escaping every printed value for Slack."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False, finalize=_finalize
    )
    env.filters.update(filters)
    return env


def macro(module: object, name: str, *args: Any) -> str:
    """Render a template's macro (`{% macro name(…) %}`) from its module (`Template.make_module`)."""
    return str(getattr(module, name)(*args))
