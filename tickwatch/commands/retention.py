"""`tickwatch retention`: delete old daily tick indices."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings

console = Console()


def retention(
    days: Annotated[
        int | None, typer.Option(min=1, help="keep this many days (default TICKWATCH_TICK_RETENTION_DAYS)")
    ] = None,
) -> None:
    """Delete daily tick indices older than N days (anomalies are kept).

    Example: [bold]tickwatch retention --days 7[/bold]
    """
    from pipeline import store
    from pipeline.context import Context

    ctx = Context(get_settings())
    dropped = store.drop_expired_ticks(ctx.es, ctx.indices, days or ctx.settings.tick_retention_days)
    console.print(
        f"deleted {len(dropped)} tick {'index' if len(dropped) == 1 else 'indices'}"
        + (f": {', '.join(dropped)}" if dropped else "")
    )


def register(app: typer.Typer) -> None:
    app.command()(retention)
