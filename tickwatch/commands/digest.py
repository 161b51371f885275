"""`tickwatch digest`: the daily digest in the terminal (Rich), or posted to Slack like the Airflow DAG does."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from pipeline.settings import MISSING_SLACK_TOKEN, get_settings

if TYPE_CHECKING:
    from pipeline.digest.summary import Digest

console = Console()
TERMINAL_ROWS = 20


def digest(
    day: Annotated[
        str | None,
        typer.Option(
            "--date", help="the calendar day, YYYY-MM-DD (default: the last complete day in TICKWATCH_DIGEST_TZ)"
        ),
    ] = None,
    post: Annotated[bool, typer.Option("--post", help="post it to Slack (edits the day's message if posted)")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what --post would send, and where; send nothing")
    ] = False,
    channel: Annotated[
        str | None, typer.Option(help="Slack channel (default: TICKWATCH_DIGEST_CHANNEL, else TICKWATCH_SLACK_CHANNEL)")
    ] = None,
) -> None:
    """Summarise one market day: movers, drawdowns and rises, anomalies, mutes, data health.

    Examples:
      [bold]tickwatch digest[/bold]                              the last complete day, in the terminal
      [bold]tickwatch digest --date 2026-11-20 --post[/bold]     post (or update) that day's Slack message
      [bold]tickwatch digest --date 2026-11-20 --dry-run[/bold]  what --post would send, sending nothing
    """
    from pipeline import groups
    from pipeline.context import Context
    from pipeline.digest import message as digest_message
    from pipeline.digest import posting as digest_posting
    from pipeline.digest import summary as digests

    ctx = Context(get_settings())
    settings = ctx.settings
    if post and not dry_run and not settings.slack_bot_token:
        Console(stderr=True, soft_wrap=True).print(f"✘ {MISSING_SLACK_TOKEN} first", style="red", markup=False)
        raise typer.Exit(2)
    chosen = _day(day, settings.digest_tz)
    with console.status(f"Summarising {chosen} ({settings.digest_tz})…"):
        summary = digests.build(ctx.es, ctx.indices, settings, chosen, groups=groups.load(ctx.redis))
    target = channel or settings.digest_channel or settings.slack_channel
    if not (post or dry_run):
        show(summary)
        return
    if dry_run:  # with or without --post: nothing is sent
        known = digest_posting.posted_message(ctx.es, ctx.indices, chosen, target)
        verb = f"update message {known['ts']} in" if known else "post to"
        chart = "upload the chart in its thread and " if summary.paths else ""
        console.print(f"[yellow]dry run[/yellow]: would {verb} {target}, then {chart}send the digest.daily event:")
        console.print(digest_message.text(summary), markup=False)
        return
    posted = digest_posting.deliver(summary, settings, channel=target)
    queued = digest_posting.notify(summary, settings, ctx.redis)
    console.print(
        f"[green]✔[/green] {'updated' if posted.updated else 'posted'} the {chosen} digest in {target} "
        f"(ts {posted.ts}); chart {posted.file_id or 'none: no ticks'}; digest.daily on Kafka and to "
        f"{queued} new webhook {digest_message.noun(queued, 'delivery', 'deliveries')}"
    )


def _day(text: str | None, tz: str) -> date:
    """The --date asked for, or the last complete day; a day that has not begun in `tz` is refused."""
    from pipeline.digest.summary import day_bounds, last_complete_day

    if not text:
        return last_complete_day(tz)
    try:
        chosen = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"takes a day as YYYY-MM-DD, not {text!r}", param_hint="--date") from None
    if day_bounds(chosen, tz)[0] > datetime.now(UTC):
        raise typer.BadParameter(
            f"{chosen} has not begun yet in {tz}; choose a past day (default: the last complete day)",
            param_hint="--date",
        )
    return chosen


def fitted(title: str, rows: list[dict[str, str]], columns: list[str], width: int, dropped_first: list[str]) -> Table:
    """A table of `rows` that fits `width` by leaving out columns (in the order of `dropped_first`), never by
    cutting a cell: each column is as wide as its longest cell (symbols and prices stay whole)."""
    widest = {name: max([len(name)] + [len(row[name]) for row in rows]) for name in columns}
    kept = list(columns)
    for name in dropped_first:
        if sum(widest[column] + 3 for column in kept) + 1 <= width:  # each cell: padding and a border
            break
        kept.remove(name)
    table = Table(title=title)
    for name in kept:
        table.add_column(name, min_width=widest[name], justify="right" if name in NUMERIC else "left")
    for row in rows:
        table.add_row(*(row[name] for name in kept))
    return table


NUMERIC = {"open", "close", "open→close", "low", "drawdown", "high", "rise", "ticks"}
NUMERIC |= {"anomalies", "acknowledged", "resolved", "muted"}


def _movers(summary: Digest, width: int) -> Table:
    """Top movers; a narrow terminal loses ticks, high, low, rise, drawdown and open first, never a symbol, the
    close or the day's change."""
    rows = [
        {
            "symbol": m.symbol,
            "open": f"{m.open:,.2f}",
            "close": f"{m.close:,.2f}",
            "open→close": f"{m.change_pct:+.2f}%",
            "low": f"{m.low:,.2f}",
            "drawdown": f"{m.drawdown_pct:+.2f}%",
            "high": f"{m.high:,.2f}",
            "rise": f"{m.rise_pct:+.2f}%",
            "ticks": f"{m.ticks:,}",
        }
        for m in summary.movers
    ]
    columns = ["symbol", "open", "close", "open→close", "low", "drawdown", "high", "rise", "ticks"]
    return fitted("Top movers", rows, columns, width, ["ticks", "high", "low", "rise", "drawdown", "open"])


def _counts(summary: Digest, width: int) -> Table:
    rows = [
        {
            "symbol": c.symbol,
            "rule": c.rule,
            "anomalies": str(c.total),
            "acknowledged": str(c.acknowledged),
            "open": str(c.open),
            "resolved": str(c.resolved),
            "muted": str(c.muted),
        }
        for c in summary.anomalies[:TERMINAL_ROWS]
    ]
    columns = ["symbol", "rule", "anomalies", "acknowledged", "open", "resolved", "muted"]
    table = fitted("Anomalies", rows, columns, width, ["resolved", "open", "muted", "acknowledged"])
    if summary.anomaly_pairs > TERMINAL_ROWS:
        table.caption = f"… and {summary.anomaly_pairs - TERMINAL_ROWS} more symbol/rule pairs"
    return table


def show(summary: Digest, out: Console = console) -> None:
    """The digest as Rich tables; a table with no rows is left out (an empty or quiet day stays short)."""
    from pipeline.digest.message import noun

    zone = ZoneInfo(summary.tz)
    traded = (
        f"{summary.symbols:,} {noun(summary.symbols, 'symbol')}, {summary.ticks:,} {noun(summary.ticks, 'tick')}"
        if summary.symbols
        else "no ticks stored (the market was closed, or no feed ran)"
    )
    out.print(
        f"[bold]Market digest {summary.day}[/bold] ({summary.tz}): {traded}, {summary.anomalies_total:,} "
        f"{noun(summary.anomalies_total, 'anomaly', 'anomalies')} ({summary.acknowledged_total:,} "
        "acknowledged)",
        highlight=False,
    )
    if not summary.complete:
        out.print(f"[yellow]The day is not over: figures up to {summary.generated_at.astimezone(zone):%H:%M}.[/yellow]")
    moves = _movers(summary, out.width)
    extremes = Table("biggest drawdowns", "", "biggest rises", "")
    for i in range(max(len(summary.drawdowns), len(summary.rises))):
        down = summary.drawdowns[i] if i < len(summary.drawdowns) else None
        up = summary.rises[i] if i < len(summary.rises) else None
        extremes.add_row(
            down.symbol if down else "",
            f"{down.drawdown_pct:+.2f}%" if down else "",
            up.symbol if up else "",
            f"{up.rise_pct:+.2f}%" if up else "",
        )
    counts = _counts(summary, out.width)
    mutes = Table("symbol", "muted by", "until", "reason", title="Muted at the end of the day")
    for mute in summary.muted_at_end:
        until = f"{mute.until.astimezone(zone):%Y-%m-%d %H:%M}" if mute.until else "until unmuted"
        mutes.add_row(mute.symbol, mute.by, until, mute.reason)
    for table in (moves, extremes, counts, mutes):
        if table.row_count:
            out.print(table)
    health = summary.health
    dead = "unknown" if health.dead_letters is None else f"{health.dead_letters:,}"
    out.print(
        f"[bold]Data health[/bold]: {health.late_ticks:,} late {noun(health.late_ticks, 'tick')}, "
        f"{health.suspect_ticks:,} suspect {noun(health.suspect_ticks, 'tick')}, {dead} dead "
        f"{noun(health.dead_letters or 0, 'letter')}, {health.silent_total} "
        f"{noun(health.silent_total, 'symbol')} silent ≥ {health.silence_minutes} min",
        highlight=False,
    )
    for s in health.silent:
        stopped = f", stopped at {s.last_at.astimezone(zone):%H:%M}" if s.stopped_early else ""
        out.print(f"  {s.symbol}: silent {s.silent_minutes} min{stopped}")
    out.print(f"[dim]Times in {summary.tz}.[/dim]")


def register(app: typer.Typer) -> None:
    app.command("digest")(digest)
