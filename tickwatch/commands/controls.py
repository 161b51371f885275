"""`tickwatch mute | unmute | mutes | threshold | audit`: the operator controls from a terminal.

The same `pipeline.controls.Controls` service as the Slack bot and the API, so the same validation and the
same audit trail (recorded as via "cli", by `--as` or the login name).
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.controls import mute_length
from pipeline.durations import format_duration
from pipeline.settings import get_settings

if TYPE_CHECKING:
    from pipeline.controls import Actor, Controls

console = Console()
RULE_USAGE = (
    "RULE THRESHOLD [WINDOW] [cooldown DURATION] [confirm N|DURATION], e.g. drop 3% 10m, rise 8%, "
    "zscore 4, volume 5x 15m, drop off"
)
As = Annotated[str | None, typer.Option("--as", help="who is making the change (default: your login name)")]


def _controls() -> Controls:
    """Made on use: the clients' imports stay off every other command's start-up."""
    from pipeline.context import Context

    return Context(get_settings()).controls


def _require_known(symbol: str) -> None:
    """As in the bot and the API: a symbol no tick was stored for is most likely a typo (UnknownSymbol, with the
    closest known symbols; tickwatch.errors words it)."""
    from pipeline import history
    from pipeline.context import Context

    ctx = Context(get_settings())
    history.require_symbol(ctx.es, ctx.indices, symbol)


def _actor(name: str | None) -> Actor:
    from pipeline.controls import Actor

    return Actor(name or getpass.getuser(), "cli")


def _refuse(error: ValueError) -> typer.Exit:
    console.print(f"[red]✘ {error}[/red]")
    return typer.Exit(2)


def mute(
    symbol: Annotated[str, typer.Argument(help="e.g. TSLA or BTC-USD")],
    duration: Annotated[
        str | None,
        typer.Option("--for", help="how long: 30m, 2h, 1d, or forever (until unmuted); default 1h, as in Slack"),
    ] = None,
    reason: Annotated[str, typer.Option(help="why, shown with the mute")] = "",
    actor: As = None,
) -> None:
    """Stop notifying a symbol's anomalies (they are still detected and stored, flagged muted).

    Example: [bold]tickwatch mute TSLA --for 2h --reason "earnings call"[/bold]
    """
    try:
        wanted = mute_length(duration)
        _require_known(symbol)
        change = _controls().mute(symbol, _actor(actor), duration=wanted, reason=reason)
    except ValueError as error:
        raise _refuse(error) from None
    console.print(f"[green]✔[/green] {change.symbol} {change.summary()}")


def unmute(symbol: Annotated[str, typer.Argument(help="e.g. TSLA")], actor: As = None) -> None:
    """Notify a muted symbol's anomalies again.

    Example: [bold]tickwatch unmute TSLA[/bold]
    """
    try:
        change = _controls().unmute(symbol, _actor(actor))
    except ValueError as error:
        raise _refuse(error) from None
    if change is None:
        _require_known(symbol)  # unmuting needs no stored ticks, but a typo that was never muted gets suggestions
    console.print(f"[green]✔[/green] {symbol.upper()} unmuted" if change else f"{symbol.upper()} was not muted")


def mutes() -> None:
    """List the mutes in force: until when, by whom, why.

    Example: [bold]tickwatch mutes[/bold]
    """
    found = _controls().mutes()
    if not found:
        console.print("No symbol is muted.")
        return
    table = Table("symbol", "until", "by", "reason", "since")
    for item in found:
        table.add_row(
            item.symbol,
            f"{item.until:%Y-%m-%d %H:%M} UTC" if item.until else "unmuted",
            item.by,
            item.reason or "-",
            f"{item.at:%Y-%m-%d %H:%M} UTC" if item.at else "-",
        )
    console.print(table)


def threshold(
    symbol: Annotated[str, typer.Argument(help="e.g. TSLA")],
    change: Annotated[list[str] | None, typer.Argument(help=RULE_USAGE)] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="how many alerts the change would have raised in the last 7 days")
    ] = False,
    reset: Annotated[str | None, typer.Option(help="same as `RULE reset`: the rule back to its default")] = None,
    actor: As = None,
) -> None:
    """Show a symbol's rules, or change one: the grammar of /threshold in Slack (and of the API's fields).

    Examples:
      [bold]tickwatch threshold TSLA[/bold]
      [bold]tickwatch threshold TSLA drop 3% 10m[/bold]
      [bold]tickwatch threshold TSLA drop 3% 10m --preview[/bold]
      [bold]tickwatch threshold TSLA volume 5x 15m confirm 10s[/bold]
      [bold]tickwatch threshold BTC-USD rise off[/bold]
      [bold]tickwatch threshold TSLA drop reset[/bold]
    """
    from pipeline.controls import parse_rule_words
    from pipeline.detect import backtest

    controls = _controls()
    words = [*(change or ()), *((reset, "reset") if reset else ())]
    try:
        _require_known(symbol)
        asked = parse_rule_words(words) if words else None
        if asked and preview:
            if asked.reset:
                raise ValueError("reset cannot be previewed; preview the default's values instead")
            tried = backtest.preview(controls.es, controls.indices, controls, symbol, asked.rule, **asked.change)
            console.print(backtest.preview_text(tried), markup=False, soft_wrap=True)
            return
        if asked and asked.reset:
            controls.reset_rule(symbol, asked.rule, _actor(actor))
        elif asked:
            controls.set_rule(symbol, asked.rule, _actor(actor), **asked.change)
        elif preview:
            raise ValueError("--preview needs a rule and a threshold, e.g. drop 3% 10m")
        views = controls.rules(symbol)
    except ValueError as error:
        raise _refuse(error) from None
    from pipeline.controls import format_threshold

    table = Table("rule", "threshold", "window", "cooldown", "confirm", "", title=f"{symbol.upper()} rules")
    for view in views.values():
        confirm = f"{view.confirm_ticks} tick{'s' * (view.confirm_ticks != 1)}" + (
            f", {format_duration(view.confirm_seconds)}" if view.confirm_seconds else ""
        )
        table.add_row(
            view.name,
            format_threshold(view.name, view.threshold_pct) if view.enabled else "off",
            format_duration(view.window_seconds),
            format_duration(view.cooldown_seconds),
            confirm,
            "override" if view.overridden else "default",
        )
    console.print(table)


def audit(
    symbol: Annotated[str | None, typer.Argument(help="only this symbol")] = None,
    limit: Annotated[int, typer.Option(help="how many changes, newest first")] = 20,
) -> None:
    """Every change to mutes and rules: when, who, through which front-end, old → new.

    Example: [bold]tickwatch audit TSLA[/bold]
    """
    try:
        changes = _controls().audit_log(symbol=symbol, limit=limit)
    except ValueError as error:
        raise _refuse(error) from None
    table = Table("when (UTC)", "who", "via", "symbol", "change")
    for change in changes:
        table.add_row(
            f"{change.at:%Y-%m-%d %H:%M:%S}", change.actor.name, change.actor.via, change.symbol, change.summary()
        )
    console.print(table if changes else "No changes recorded.")


def register(app: typer.Typer) -> None:
    for command in (mute, unmute, mutes, threshold, audit):
        app.command()(command)
