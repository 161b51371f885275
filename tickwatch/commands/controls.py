"""`tickwatch mute | unmute | mutes | group | threshold | audit`: the operator controls from a terminal.

The same `pipeline.controls.Controls` service as the Slack bot and the API, so the same validation and the
same audit trail (recorded as via "cli", by `--as` or the login name).
"""

from __future__ import annotations

import getpass
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.durations import format_duration
from pipeline.mutes import mute_length
from pipeline.settings import get_settings

if TYPE_CHECKING:
    from pipeline.audit import Actor
    from pipeline.controls import Controls

console = Console()
errors = Console(stderr=True)
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
    from pipeline.audit import Actor

    return Actor(name or getpass.getuser(), "cli")


def _refuse(error: ValueError) -> typer.Exit:
    errors.print(f"[red]✘ {escape(str(error))}[/red]")
    return typer.Exit(2)


def mute(
    symbol: Annotated[str, typer.Argument(help="e.g. TSLA, BTC-USD or group:crypto")],
    how: Annotated[
        list[str] | None,
        typer.Argument(help="as in Slack: 2h, forever, until-resolved, until above 250, every sun 00:00-02:00 UTC …"),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--for", help="how long: 30m, 2h, 1d, or forever (until unmuted); default 1h, as in Slack"),
    ] = None,
    reason: Annotated[str, typer.Option(help="why, shown with the mute")] = "",
    actor: As = None,
) -> None:
    """Stop notifying a symbol's or group's anomalies (they are still detected and stored, flagged muted).

    Examples:
      [bold]tickwatch mute TSLA --for 2h --reason "earnings call"[/bold]
      [bold]tickwatch mute TSLA until above 250 unless 2x[/bold]
      [bold]tickwatch mute group:crypto every sun 00:00-02:00 UTC exchange maintenance[/bold]
    """
    from pipeline.groups import is_group, normalise_target
    from pipeline.mutes import MuteAsk, parse_mute_words

    try:
        if how and duration:
            raise ValueError("give the length either in the words or with --for, not both")
        ask = parse_mute_words(how) if how else MuteAsk(duration=mute_length(duration))
        target = normalise_target(symbol)
        if not is_group(target):
            _require_known(target)
        change = _controls().mute_as(
            target, _actor(actor), replace(ask, reason=" ".join(filter(None, (ask.reason, reason))))
        )
    except ValueError as error:
        raise _refuse(error) from None
    console.print(f"[green]✔[/green] {change.symbol} {change.summary()}")


def unmute(symbol: Annotated[str, typer.Argument(help="e.g. TSLA or group:crypto")], actor: As = None) -> None:
    """Notify a muted symbol's or group's anomalies again (its recurring windows are removed too).

    Example: [bold]tickwatch unmute TSLA[/bold]
    """
    from pipeline.groups import is_group, normalise_target

    try:
        target = normalise_target(symbol)
        changes = _controls().unmute(target, _actor(actor))
    except ValueError as error:
        raise _refuse(error) from None
    if not changes and not is_group(target):
        _require_known(target)  # unmuting needs no stored ticks, but a typo that was never muted gets suggestions
    console.print(f"[green]✔[/green] {target} unmuted" if changes else f"{target} was not muted")


def mutes() -> None:
    """List the mutes in force: until when, by whom, why.

    Example: [bold]tickwatch mutes[/bold]
    """
    controls = _controls()
    found, windows = controls.mutes(), controls.windows()
    if not found and not windows:
        console.print("Nothing is muted.")
        return
    table = Table("target", "mute", "by", "reason", "since")
    for item in found:
        since = f"{item.at:%Y-%m-%d %H:%M} UTC" if item.at else "-"
        table.add_row(item.symbol, item.says(), item.by, item.reason or "-", since)
    for window in windows:
        since = f"{window.at:%Y-%m-%d %H:%M} UTC" if window.at else "-"
        table.add_row(window.target, f"{window.says()} ({window.id})", window.by, window.reason or "-", since)
    console.print(table)


def group(
    name: Annotated[str | None, typer.Argument(help="the group, e.g. semis (none: list every group)")] = None,
    action: Annotated[str | None, typer.Argument(help="add, remove or delete")] = None,
    members: Annotated[list[str] | None, typer.Argument(help="symbols or patterns such as *-USD")] = None,
    actor: As = None,
) -> None:
    """List groups, show one, or change one: the grammar of /group in Slack.

    Examples:
      [bold]tickwatch group semis add NVDA AMD SOX*[/bold]
      [bold]tickwatch group semis remove AMD[/bold]
      [bold]tickwatch group semis delete[/bold]
    """
    controls = _controls()
    try:
        if name is None:
            found = controls.groups()
            for each in found.values():
                console.print(f"group:{each.name}: {', '.join(each.members)}", markup=False)
            if not found:
                console.print("No groups yet.")
            return
        if action is None:
            shown = controls.group(name)
            if shown is None:
                raise ValueError(f"there is no group {name}")
            console.print(f"group:{shown.name}: {', '.join(shown.members)}", markup=False)
            return
        if action not in ("add", "remove", "delete"):
            raise ValueError(f"{action!r}: after the group's name comes add, remove or delete")
        if action == "delete":
            change = controls.delete_group(name, _actor(actor))
        elif not members:
            raise ValueError(f"{action} takes symbols or patterns, e.g. NVDA AMD or *-USD")
        else:
            change = controls.change_group(name, _actor(actor), **{action: members})
    except ValueError as error:
        raise _refuse(error) from None
    console.print(f"[green]✔[/green] {escape(change.symbol)}: {escape(change.summary())}")


def threshold(
    symbol: Annotated[str, typer.Argument(help="e.g. TSLA")],
    change: Annotated[list[str] | None, typer.Argument(help=RULE_USAGE)] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="how many alerts the change would have raised in the last 7 days")
    ] = False,
    reset: Annotated[str | None, typer.Option(help="same as `RULE reset`: the rule back to its default")] = None,
    actor: As = None,
) -> None:
    """Show a symbol's or group's rules (and where each comes from), or change one: the grammar of /threshold
    in Slack (and of the API's fields).

    Examples:
      [bold]tickwatch threshold TSLA[/bold]
      [bold]tickwatch threshold TSLA drop 3% 10m[/bold]
      [bold]tickwatch threshold TSLA drop 3% 10m --preview[/bold]
      [bold]tickwatch threshold TSLA volume 5x 15m confirm 10s[/bold]
      [bold]tickwatch threshold BTC-USD rise off[/bold]
      [bold]tickwatch threshold TSLA drop reset[/bold]
      [bold]tickwatch threshold TSLA suggest[/bold]   (what acknowledgements with a reason suggest)
    """
    from pipeline.detect import backtest
    from pipeline.groups import is_group, normalise_target
    from pipeline.rule_words import parse_rule_words

    controls = _controls()
    words = [*(change or ()), *((reset, "reset") if reset else ())]
    try:
        symbol = normalise_target(symbol)
        if not is_group(symbol):
            _require_known(symbol)
        if [w.lower() for w in words] == ["suggest"]:
            _print_suggestions(controls, symbol)
            return
        asked = parse_rule_words(words) if words else None
        if asked and preview:
            if asked.reset:
                raise ValueError("reset cannot be previewed; preview the default's values instead")
            tried = backtest.preview(
                controls.audit.es, controls.audit.indices, controls, symbol, asked.rule, **asked.change
            )
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
    from pipeline.rule_words import format_threshold

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
            "override" if view.overridden else view.source,
        )
    console.print(table)


def _print_suggestions(controls: Controls, symbol: str) -> None:
    """`threshold SYMBOL suggest`: what acknowledgements suggest, as the bot says it."""
    from pipeline.detect import tuning
    from pipeline.rule_words import format_threshold

    found = tuning.suggest(controls.audit.es, controls.audit.indices, controls, symbol)
    if not found:
        console.print(f"No alert of {symbol} was acknowledged with a reason in the last {tuning.TUNING_DAYS} days.")
    for s in found:
        verdict = "keep it" if not s.changes or s.suggested is None else format_threshold(s.rule, s.suggested)
        replay = (
            f" ({s.preview.candidate.alerts} alerts in 7 days, now {s.preview.current.alerts})" if s.preview else ""
        )
        console.print(
            f"{s.rule} {format_threshold(s.rule, s.current)}: {s.deserved} deserved, {s.undeserved} too sensitive "
            f"or bad data → {verdict}{replay}",
            markup=False,
        )


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
    for command in (mute, unmute, mutes, group, threshold, audit):
        app.command()(command)
