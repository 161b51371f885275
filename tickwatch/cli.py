"""`tickwatch`: the one command line for the stack, the pipeline's processes, the demo and the bench."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tickwatch.commands import (
    api,
    bench,
    bot,
    config,
    controls,
    demo,
    digest,
    generate,
    ingest,
    processes,
    retention,
    secrets,
    stack,
    tokens,
)
from tickwatch.errors import DEBUG_ENV

# The order `tickwatch --help` lists the commands in: as a newcomer meets them (start, run, operate, maintain).
# A command not named here is listed after these.
COMMAND_ORDER = (
    "stack",
    "demo",
    "generate",
    "ingest",
    "worker",
    "bridge",
    "api",
    "bot",
    "digest",
    "mute",
    "unmute",
    "mutes",
    "group",
    "threshold",
    "audit",
    "bench",
    "seed",
    "token",
    "secrets",
    "config",
    "retention",
)


class _NewcomerOrder(TyperGroup):
    """Lists commands in COMMAND_ORDER instead of the order the modules happen to register them in."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer's own (vendored) click.Context
        rank = {name: place for place, name in enumerate(COMMAND_ORDER)}
        return sorted(super().list_commands(ctx), key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    help="Tickwatch: real-time market surveillance, alerts in Slack.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    cls=_NewcomerOrder,
)
for command in (
    stack,
    demo,
    generate,
    ingest,
    processes,
    api,
    bot,
    digest,
    controls,
    bench,
    tokens,
    secrets,
    retention,
    config,
):
    command.register(app)


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"show the traceback when a command fails (or {DEBUG_ENV}=1)")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # read by tickwatch.errors, and inherited by the processes commands start
