"""`tickwatch config docs`: the configuration reference, generated from the settings' own descriptions.

docs/configuration.md is this command's output; a test fails when the two drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.settings import Settings

config_app = typer.Typer(help="Tickwatch's settings.", no_args_is_help=True)

INTRO = """# Configuration

Every setting is an environment variable (also read from `.env` in the working directory), read by
pydantic-settings: `TICKWATCH_` + the name in capitals, and Slack's own names for its tokens. The defaults work
with the local stack (`tickwatch stack up`). Lists are JSON (`["U012AB3CD"]`). A bad value stops every command
with one line naming the variable and what it accepts.

`TICKWATCH_DEBUG=1` (not a setting: read before settings are) makes a failing `tickwatch` command show its
traceback, as `tickwatch --debug` does.

This page is generated from the settings' descriptions (`tickwatch config docs > docs/configuration.md`).

| variable | default | meaning |
|---|---|---|
"""


def variable(name: str, field: FieldInfo) -> str:
    """The environment variable a setting is read from."""
    choices = getattr(field.validation_alias, "choices", None)
    return str(choices[0]) if choices else f"TICKWATCH_{name.upper()}"


def default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None or value is PydanticUndefined:
        return "—"
    if isinstance(value, Path):
        value = str(value).replace(str(Path.home()), "~", 1)
    return f"`{value}`"


def reference() -> str:
    rows = [
        f"| `{variable(name, field)}` | {default(field)} | {(field.description or '').replace('|', '/')} |"
        for name, field in Settings.model_fields.items()
    ]
    return INTRO + "\n".join(rows) + "\n"


@config_app.command("docs")
def docs() -> None:
    """Print the configuration reference (Markdown): every setting, its variable, default and meaning.

    Example: [bold]tickwatch config docs > docs/configuration.md[/bold]
    """
    typer.echo(reference(), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
