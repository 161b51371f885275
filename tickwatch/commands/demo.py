"""`tickwatch demo`: the live demo on the local stack."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from pipeline.settings import get_settings
from tickwatch.commands import clear_leftovers
from tickwatch.commands.generate import check_speed
from tickwatch.commands.stack import stack_up
from tickwatch.leftovers import ended_by_signals

console = Console()


def demo(
    symbols: Annotated[int, typer.Option("--symbols", "-n", help="symbols in the market")] = 12,
    speed: Annotated[str, typer.Option(help="replay speed: max, or a factor such as 60", callback=check_speed)] = "max",
    workers: Annotated[int, typer.Option(help="worker processes to start (2 children each)")] = 1,
    seed: Annotated[int, typer.Option(help="random seed of the market")] = 7,
    hold: Annotated[
        bool | None,
        typer.Option(
            "--hold/--no-hold",
            help="keep the API and bot up after the tour until Enter (default: when run in a terminal)",
        ),
    ] = None,
) -> None:
    """The live demo: a replayed market with injected crashes, then a tour of every front-end.

    Starts the stack, workers, the bridge, the HTTP API and the Slack bot; replays 30 minutes of a market with
    injected crashes, shows throughput, lag and alerts live, then injected vs detected, and a tour: the Slack
    alert, a signed Acknowledge click, /price, a signed webhook delivery and the daily digest.

    Works offline: with no SLACK_BOT_TOKEN, Slack messages go to a local fake Slack Web API and are shown.

    Example: [bold]tickwatch demo --symbols 20[/bold]
    """

    from pipeline.ingest.generator import parse_speed
    from tickwatch.demo import run as demo_module

    stack_up()
    clear_leftovers(console)
    with ended_by_signals():
        demo_module.run(
            get_settings(),
            console,
            symbols=symbols,
            speed=parse_speed(speed),
            workers=workers,
            seed=seed,
            hold=sys.stdin.isatty() and console.is_terminal if hold is None else hold,
        )


def register(app: typer.Typer) -> None:
    app.command()(demo)
