"""`tickwatch generate`: publish a synthetic market, or replay market data files, onto Kafka."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.settings import Settings, get_settings

console = Console()
REPLAY_ONLY = "--tz, --columns and --skip-bad-rows apply to --csv replay"


def check_speed(value: str) -> str:
    """Typer callback: a bad --speed is reported when the command line is read, before any work."""
    from pipeline.ingest.generator import parse_speed

    try:
        parse_speed(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    return value


def register(app: typer.Typer) -> None:
    app.command()(generate)


def generate(
    symbols: Annotated[int, typer.Option("--symbols", "-n", help="how many synthetic symbols")] = 12,
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="a symbol to include (repeatable)")] = None,
    duration: Annotated[str, typer.Option(help="event time to cover, e.g. 30m, 2h")] = "30m",
    interval: Annotated[str, typer.Option(help="event time between a symbol's ticks")] = "1s",
    count: Annotated[int | None, typer.Option(help="stop after this many ticks in all")] = None,
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same prices")] = 0,
    start: Annotated[str | None, typer.Option(help="event time of the first tick (ISO-8601); default now")] = None,
    inject: Annotated[
        list[str] | None,
        typer.Option(help="an injected move, kind:SYMBOL:pct:duration@offset, e.g. drop:TSLA:8%:90s@10m"),
    ] = None,
    scenario: Annotated[
        Path | None, typer.Option(help="a TOML scenario file (symbols, duration, events)", exists=True, dir_okay=False)
    ] = None,
    csv: Annotated[
        list[str] | None,
        typer.Option(help="replay a market data file of bars, SYMBOL=path.csv (repeatable; files are merged by time)"),
    ] = None,
    tz: Annotated[str, typer.Option(help="time zone of naive times in --csv files, e.g. America/New_York")] = "UTC",
    columns: Annotated[
        str | None,
        typer.Option(
            help="where the values are in a --csv file of another layout, e.g. time=Date,close=Close,volume=Vol"
        ),
    ] = None,
    skip_bad_rows: Annotated[bool, typer.Option(help="skip (and count) rows that cannot be read")] = False,
    shift_to: Annotated[
        str | None,
        typer.Option(
            help="move the whole replay so it starts now (or at an ISO-8601 time); ground truth moves with it"
        ),
    ] = None,
    speed: Annotated[
        str,
        typer.Option(
            help="1 = real time, 60 = a minute per second, max = as fast as Kafka takes it", callback=check_speed
        ),
    ] = "max",
    ground_truth: Annotated[Path | None, typer.Option(help="write the injected events here (JSON lines)")] = None,
    topic: Annotated[str | None, typer.Option(help="default: TICKWATCH_TICKS_TOPIC")] = None,
) -> None:
    """Publish price ticks to Kafka: a synthetic market, or a replay of market data files.

    Synthetic prices follow geometric Brownian motion with injected moves; a replay reads the documented layout,
    Yahoo Finance, kline exports, or any via --columns.

    A replay reads and checks every file before the first tick is sent (docs/cli.md, Replaying market data files):
    rows out of order are sorted, duplicate timestamps kept once, a bad row stops it (--skip-bad-rows: skipped).
    Each bar becomes four ticks spread over it: open, the extremes, close.

    Examples:
      [bold]tickwatch generate -n 20 --duration 1h --inject drop:TSLA:8%:90s@10m --speed 60[/bold]
      [bold]tickwatch generate --scenario scenarios/demo.toml --ground-truth truth.jsonl[/bold]
      [bold]tickwatch generate --csv AAPL=aapl.csv --tz America/New_York --shift-to now --speed 1[/bold]
      [bold]tickwatch generate --csv BTC-USD=BTCUSDT-1m-2026-11-01.csv --csv ETH-USD=ETHUSDT-1m.csv[/bold]
      [bold]tickwatch generate --csv X=export.csv --columns time=Date,close=Close,volume=Vol[/bold]
    """
    from pipeline.ingest.bars import parse_columns, parse_zone, read_bars, replay
    from pipeline.ingest.generator import Scenario, load_scenario, pace, parse_shift_to, parse_speed
    from pipeline.ingest.publish import publish

    settings = get_settings()
    try:
        pace_speed = parse_speed(speed)
        target = parse_shift_to(shift_to) if shift_to else None
        if csv:
            if ground_truth:
                raise ValueError("--ground-truth is for synthetic markets (--inject, --scenario); a replay has none")
            zone, mapping = parse_zone(tz), parse_columns(columns) if columns else None
            files = [
                read_bars(path, name, zone=zone, columns=mapping, skip_bad_rows=skip_bad_rows)
                for name, path in _symbol_paths(csv)
            ]
            for bar_file in files:
                console.print(bar_file.summary(), soft_wrap=True, markup=False)
                for problem in bar_file.skipped:
                    console.print(f"  skipped {problem}", style="yellow", soft_wrap=True)
            first = min(bar_file.first for bar_file in files)
            shift = target - first if target else timedelta(0)
            last = max(bar_file.bars[-1].opened for bar_file in files)
            ticks, total = replay(files, shift), sum(bar_file.tick_count for bar_file in files)
            if target:
                console.print(f"shifted by {_days(shift)}: the replay starts {target:%Y-%m-%d %H:%M:%S} UTC")
                _warn_if_ahead(target, last - first, pace_speed, settings)
        else:
            if tz != "UTC" or columns or skip_bad_rows:
                raise ValueError(REPLAY_ONLY)
            if start and target:
                raise ValueError("give --start or --shift-to, not both")
            built = (
                load_scenario(scenario)
                if scenario
                else Scenario.build(
                    symbols=symbol or None,
                    symbol_count=None if symbol else symbols,
                    start=start,
                    interval_s=interval,
                    duration=duration,
                    count=count,
                    seed=seed,
                    events=inject or (),
                )
            )
            if target:
                built = replace(built, start=target)
                _warn_if_ahead(target, timedelta(seconds=built.duration_s), pace_speed, settings)
            elif not start:
                built = _going_on(built, settings)
            if ground_truth:
                built.write_ground_truth(ground_truth)
            ticks, total = built.ticks(), built.tick_count
        sent = publish(pace(ticks, pace_speed), settings, topic=topic, total=total)
    except ValueError as error:
        Console(stderr=True, soft_wrap=True).print(f"✘ {error}", style="red", markup=False)
        raise typer.Exit(2) from None
    console.print(f"[green]✔[/green] published {sent:,} tick{'' if sent == 1 else 's'}")


def _going_on(built: Any, settings: Settings) -> Any:
    """The market continued from where the stored one stands (prices and time), so nothing jumps that was not
    injected; without Redis it starts afresh, and says so."""
    from redis import Redis
    from redis.exceptions import RedisError

    from pipeline.ingest.continuity import going_on

    try:
        return going_on(Redis.from_url(settings.redis_url, socket_connect_timeout=2), built)
    except RedisError:
        console.print(
            "Redis is not reachable: the market starts afresh (a jump from stored prices may alert)", style="yellow"
        )
        return built


def _symbol_paths(items: list[str]) -> list[tuple[str, str]]:
    pairs = [item.split("=", 1) for item in items]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ValueError("--csv takes SYMBOL=path.csv")
    return [(name, path) for name, path in pairs]


def _days(shift: timedelta) -> str:
    sign = "-" if shift < timedelta(0) else "+"
    return f"{sign}{abs(shift).total_seconds() / 86_400:,.2f} days"


def _warn_if_ahead(start: datetime, span: timedelta, speed: float | None, settings: Settings) -> None:
    """Shifted near now and replayed faster than real time, later ticks are dated ahead of the clock; the
    bridge dead-letters those more than TICKWATCH_MAX_FUTURE_SECONDS ahead, so say so before it happens."""
    drift = 1.0 if speed is None else 1 - 1 / speed  # how far ahead each event second gets
    ahead = (start - datetime.now(UTC)).total_seconds() + max(0.0, span.total_seconds() * drift)
    if ahead > settings.max_future_seconds:
        console.print(
            f"note: at this speed the last ticks are dated {ahead / 3600:,.1f} h ahead of the clock; the "
            f"bridge dead-letters ticks more than TICKWATCH_MAX_FUTURE_SECONDS "
            f"({settings.max_future_seconds} s) ahead — use --speed 1, or --shift-to an earlier start",
            style="yellow",
            soft_wrap=True,
        )
