"""`tickwatch secrets rotate`: encrypt every stored webhook secret with the newest key."""

from __future__ import annotations

import typer
from rich.console import Console

from pipeline.settings import get_settings

console = Console()
secrets_app = typer.Typer(help="The keys that encrypt webhook secrets at rest.", no_args_is_help=True)


@secrets_app.command("rotate")
def rotate() -> None:
    """Encrypt every stored webhook secret again with the first of TICKWATCH_SECRET_KEYS.

    Rotating a key: put the new key first (TICKWATCH_SECRET_KEYS=new,old) everywhere, run this, then drop the
    old key. Until then any of the keys decrypts.

    Example: [bold]TICKWATCH_SECRET_KEYS=$NEW,$OLD tickwatch secrets rotate[/bold]
    """
    from pipeline.context import Context
    from pipeline.webhooks import subscriptions

    ctx = Context(get_settings())
    count = subscriptions.reencrypt_all(ctx.redis, ctx.settings)
    console.print(f"[green]✔[/green] re-encrypted the secrets of {count} webhook subscription{'s' * (count != 1)}")


def register(app: typer.Typer) -> None:
    app.add_typer(secrets_app, name="secrets")
