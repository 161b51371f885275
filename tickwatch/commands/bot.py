"""`tickwatch bot`: serve the Slack bot over HTTP or Socket Mode, and print its app manifest.

The CLI never imports `bot` (front-ends stay apart): uvicorn gets an import string, Socket Mode runs as a
module, and the manifest is read as a file.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline import logs
from pipeline.settings import get_settings
from tickwatch.commands import require_free_port

MANIFEST = Path(__file__).resolve().parents[2] / "bot" / "manifest.yml"
PLACEHOLDER_URL = "https://example.com/slack/events"
EVENTS_PATH = "/slack/events"

bot_app = typer.Typer(invoke_without_command=True, rich_markup_mode="rich")
console = Console(stderr=True)


@bot_app.callback()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="HTTP port of POST /slack/events and GET /healthz")] = 3000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    socket: Annotated[
        bool, typer.Option("--socket", help="Socket Mode instead of HTTP (needs SLACK_APP_TOKEN)")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            "--loglevel",
            help="DEBUG, INFO, WARNING or ERROR (default: TICKWATCH_LOG_LEVEL, INFO; INFO logs each command's "
            "server time)",
        ),
    ] = None,
) -> None:
    """Serve the Slack bot: HTTP at POST /slack/events (commands, interactivity, events), or Socket Mode.

    Needs SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (and SLACK_APP_TOKEN for --socket).
    Web API calls go to TICKWATCH_SLACK_API_URL.

    Examples:
      [bold]tickwatch bot --port 3000[/bold]
      [bold]tickwatch bot --socket[/bold]
      [bold]tickwatch bot manifest --url https://bot.example.org[/bold]
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    missing = [
        name
        for name, value in (
            ("SLACK_SIGNING_SECRET", settings.slack_signing_secret),
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("SLACK_APP_TOKEN", settings.slack_app_token if socket else "-"),
        )
        if not value
    ]
    if missing:
        console.print(f"[red]✘ set {', '.join(missing)} first (see docs/bot.md)[/red]")
        raise typer.Exit(2)
    logs.configure(settings, log_level)
    if socket:
        console.print("bot: Socket Mode; Ctrl-C to stop")
        runpy.run_module("bot.socket_mode", run_name="__main__")
        return
    import uvicorn

    require_free_port(host, port)
    console.print(f"bot: http://{host}:{port}{EVENTS_PATH}; Ctrl-C to stop")
    uvicorn.run(
        "bot.server:create_app", factory=True, host=host, port=port, log_config=logs.config(settings, log_level)
    )


@bot_app.command("manifest")
def manifest(
    url: Annotated[
        str | None, typer.Option(help="the bot's public base URL (https://…); /slack/events is added")
    ] = None,
    socket: Annotated[bool, typer.Option("--socket", help="enable Socket Mode in the manifest")] = False,
) -> None:
    """Print the Slack app manifest (bot/manifest.yml) with your request URL filled in.

    Example: [bold]tickwatch bot manifest --url https://bot.example.org > manifest.yml[/bold]
    """
    try:
        text = manifest_text(url, socket=socket)
    except ValueError as error:
        console.print(f"[red]✘ {error}[/red]")
        raise typer.Exit(2) from None
    print(text, end="")


def manifest_text(url: str | None, *, socket: bool = False) -> str:
    """The manifest with every request URL set to `<url>/slack/events`; ValueError on a non-https URL."""
    text = MANIFEST.read_text(encoding="utf-8")
    if url is not None:
        if not url.startswith("https://") or " " in url:
            raise ValueError(f"Slack calls request URLs over https; got {url!r}")
        base = url.rstrip("/").removesuffix(EVENTS_PATH)
        text = text.replace(PLACEHOLDER_URL, base + EVENTS_PATH)
    if socket:
        text = text.replace("socket_mode_enabled: false", "socket_mode_enabled: true")
    return text


def register(app: typer.Typer) -> None:
    app.add_typer(bot_app, name="bot")
