"""`tickwatch token`: API tokens (shown once, stored hashed in Redis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.settings import get_settings

console = Console()

token_app = typer.Typer(help="API tokens: create (shown once, stored hashed), list, revoke.", no_args_is_help=True)


def _redis():
    from redis import Redis

    return Redis.from_url(get_settings().redis_url)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who or what uses the token (shown in the audit log)")],
    scope: Annotated[str, typer.Option(help="read, or admin (may also change thresholds, mutes, webhooks)")] = "read",
) -> None:
    """Make an API token and print it once; only its SHA-256 is stored.

    Example: [bold]tickwatch token create --name grafana --scope read[/bold]
    """
    from pipeline import tokens

    try:
        token = tokens.create(_redis(), get_settings(), name, scope)  # type: ignore[arg-type]  # Typer gave one of its choices, read or admin
    except ValueError as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]✔[/green] token {name!r} ({scope}); copy it now, it is not shown again:")
    print(token)


@token_app.command("list")
def token_list() -> None:
    """Show every token's name, scope and origin (never the token)."""
    from pipeline import tokens

    table = Table("name", "scope", "from", "created")
    for info in tokens.list_tokens(_redis(), get_settings()):
        created = datetime.fromtimestamp(info.created_at, UTC).strftime("%Y-%m-%d %H:%M") if info.created_at else "-"
        table.add_row(
            info.name, info.scope, "TICKWATCH_API_TOKENS" if info.source == "env" else "token create", created
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name")]) -> None:
    """Revoke a token made with `token create` (it stops working at once).

    Example: [bold]tickwatch token revoke grafana[/bold]
    """
    from pipeline import tokens

    if not tokens.revoke(_redis(), name):
        console.print(
            f"[red]✘ no token named {name!r} made with `token create` "
            "(tokens from TICKWATCH_API_TOKENS are removed from the environment)[/red]"
        )
        raise typer.Exit(1)
    console.print(f"[green]✔[/green] revoked {name!r}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
