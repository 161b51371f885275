"""PNG charts of stored prices (matplotlib, Agg), for Slack uploads and anything else that wants a picture.

Figures are built with `matplotlib.figure.Figure` on the Agg canvas directly, never through pyplot, so no
backend is selected globally, there is no global state, and charts can be drawn from several threads.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from pipeline.history import INTERVALS, Bar

MAX_BARS = 500


def bar_interval(window: timedelta) -> str:
    """The finest interval of `history.INTERVALS` that draws `window` in at most MAX_BARS bars."""
    for name, seconds in sorted(INTERVALS.items(), key=lambda item: item[1]):
        if window.total_seconds() / seconds <= MAX_BARS:
            return name
    return max(INTERVALS, key=INTERVALS.__getitem__)


def price_chart(title: str, bars: Sequence[Bar], *, marks: Sequence[tuple[datetime, float]] = ()) -> bytes:
    """Close price with the high-low band, volume below, `marks` (e.g. anomalies) as red points; PNG bytes."""
    if not bars:
        raise ValueError("nothing to draw: no bars in the range")
    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    prices, volumes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    times = [bar.start for bar in bars]
    prices.fill_between(times, [bar.low for bar in bars], [bar.high for bar in bars], alpha=0.25, linewidth=0)
    prices.plot(times, [bar.close for bar in bars], linewidth=1.4)
    if marks:
        prices.scatter([at for at, _ in marks], [price for _, price in marks], color="tab:red", zorder=3, s=24)
    prices.set_title(title, loc="left", fontsize=11)
    prices.grid(alpha=0.3)
    width = (times[1] - times[0]) * 0.8 if len(times) > 1 else timedelta(seconds=30)
    volumes.bar(times, [bar.volume or 0 for bar in bars], width=width, color="tab:gray")
    volumes.set_ylabel("volume", fontsize=8)
    locator = AutoDateLocator()
    volumes.xaxis.set_major_locator(locator)
    volumes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def normalised_paths(paths: Mapping[str, Sequence[tuple[datetime, float]]], *, title: str, tz: str = "UTC") -> bytes:
    """One line per symbol, each starting at 100 (its open), times in `tz`: the daily digest's top movers."""
    if not paths:
        raise ValueError("nothing to draw: no paths")
    zone = ZoneInfo(tz)
    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for symbol, points in paths.items():
        axes.plot(
            [at.astimezone(zone) for at, _ in points],  # type: ignore[arg-type]  # plotted through matplotlib's date units; its stubs know numbers only
            [value for _, value in points],
            linewidth=1.4,
            label=f"{symbol} {points[-1][1] - 100:+.1f}%",
        )
    axes.axhline(100, color="tab:gray", linewidth=0.8, linestyle="--")
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_ylabel("100 = open", fontsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    locator = AutoDateLocator(tz=zone)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=zone))
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
