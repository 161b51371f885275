"""`tickwatch digest`: the daily digest in the terminal (Rich), or posted to Slack like the Airflow DAG does."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.settings import get_settings

if TYPE_CHECKING:
    from pipeline.digest import Digest

console = Console()
TERMINAL_ROWS = 20


def digest(
    day: Annotated[str | None, typer.Option("--date", help="the calendar day, YYYY-MM-DD (default: the last "
                                                           "complete day in TICKWATCH_DIGEST_TZ)")] = None,
    post: Annotated[bool, typer.Option("--post", help="post it to Slack (edits the day's message if posted)")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what --post would send; send nothing")] = False,
    channel: Annotated[str | None, typer.Option(help="Slack channel (default: TICKWATCH_DIGEST_CHANNEL, "
                                                     "else TICKWATCH_SLACK_CHANNEL)")] = None,
) -> None:
    """Summarise one market day: movers, drawdowns and rises, anomalies, mutes, data health.

    Examples:
      [bold]tickwatch digest[/bold]                      yesterday, in the terminal
      [bold]tickwatch digest --date 2026-11-20 --post[/bold]   post (or update) that day's Slack message
      [bold]tickwatch digest --date 2026-11-20 --post --dry-run[/bold]
    """
    from pipeline import digest as digests
    from pipeline import store

    settings = get_settings()
    try:
        chosen = date.fromisoformat(day) if day else digests.last_complete_day(settings.digest_tz)
    except ValueError:
        console.print(f"[red]✘ --date takes a day as YYYY-MM-DD, not {day!r}[/red]")
        raise typer.Exit(2) from None
    with console.status(f"Summarising {chosen} ({settings.digest_tz})…"):
        summary = digests.build(store.connect(settings), store.Indices(settings.index_prefix), settings, chosen)
    target = channel or settings.digest_channel or settings.slack_channel
    if not post:
        show(summary)
        return
    if dry_run:
        es, indices = store.connect(settings), store.Indices(settings.index_prefix)
        known = digests.posted_message(es, indices, chosen, target)
        verb = f"update message {known['ts']} in" if known else "post to"
        console.print(f"[yellow]dry run[/yellow]: would {verb} {target}, then upload the chart in its thread "
                      f"and send the digest.daily event:")
        console.print(digests.text(summary), markup=False)
        return
    from redis import Redis

    posted = digests.deliver(summary, settings, channel=target)
    queued = digests.notify(summary, settings, Redis.from_url(settings.redis_url))
    console.print(f"[green]✔[/green] {'updated' if posted.updated else 'posted'} the {chosen} digest in {target} "
                  f"(ts {posted.ts}); chart {posted.file_id or 'none: no ticks'}; digest.daily on Kafka and to "
                  f"{queued} new webhook deliveries")


def show(summary: Digest) -> None:
    """The digest as Rich tables."""
    console.print(f"[bold]Market digest {summary.day}[/bold] ({summary.tz}): {summary.symbols:,} symbols, "
                  f"{summary.ticks:,} ticks, {summary.anomalies_total} anomalies "
                  f"({summary.acknowledged_total} acknowledged)")
    moves = Table("symbol", "open", "close", "open→close", "low", "drawdown", "high", "rise", "ticks",
                  title="Top movers")
    for m in summary.movers:
        moves.add_row(m.symbol, f"{m.open:.2f}", f"{m.close:.2f}", f"{m.change_pct:+.2f}%", f"{m.low:.2f}",
                      f"{m.drawdown_pct:+.2f}%", f"{m.high:.2f}", f"{m.rise_pct:+.2f}%", f"{m.ticks:,}")
    console.print(moves)
    extremes = Table("biggest drawdowns", "", "biggest rises", "")
    for i in range(max(len(summary.drawdowns), len(summary.rises))):
        down = summary.drawdowns[i] if i < len(summary.drawdowns) else None
        up = summary.rises[i] if i < len(summary.rises) else None
        extremes.add_row(down.symbol if down else "", f"{down.drawdown_pct:+.2f}%" if down else "",
                         up.symbol if up else "", f"{up.rise_pct:+.2f}%" if up else "")
    console.print(extremes)
    counts = Table("symbol", "rule", "anomalies", "acknowledged", "open", "resolved", "muted", title="Anomalies")
    for c in summary.anomalies[:TERMINAL_ROWS]:
        counts.add_row(c.symbol, c.rule, str(c.total), str(c.acknowledged), str(c.open), str(c.resolved),
                       str(c.muted))
    console.print(counts)
    if summary.anomaly_pairs > TERMINAL_ROWS:
        console.print(f"  … and {summary.anomaly_pairs - TERMINAL_ROWS} more symbol/rule pairs")
    mutes = Table("symbol", "muted by", "until", "reason", title="Muted at the end of the day")
    for m in summary.muted_at_end:
        mutes.add_row(m.symbol, m.by, f"{m.until:%Y-%m-%d %H:%M} UTC" if m.until else "until unmuted", m.reason)
    console.print(mutes)
    health = summary.health
    dead = "unknown" if health.dead_letters is None else f"{health.dead_letters:,}"
    console.print(f"[bold]Data health[/bold]: {health.late_ticks:,} late ticks, {health.suspect_ticks:,} suspect "
                  f"ticks, {dead} dead letters, "
                  f"{health.silent_total} symbols silent ≥ {health.silence_minutes} min")
    for s in health.silent:
        stopped = f", stopped at {s.last_at:%H:%M} UTC" if s.stopped_early else ""
        console.print(f"  {s.symbol}: silent {s.silent_minutes} min{stopped}")


def register(app: typer.Typer) -> None:
    app.command("digest")(digest)
