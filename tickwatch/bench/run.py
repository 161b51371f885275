"""`tickwatch bench`: runs the chosen sections, each a module of this package."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console

from pipeline.settings import Settings
from tickwatch.bench import pipeline
from tickwatch.bench.api import api_figures
from tickwatch.bench.bot import bot_price_figures
from tickwatch.bench.detection import detection_cost
from tickwatch.bench.digest import digest_figures
from tickwatch.bench.feeds import feed_check_figures
from tickwatch.bench.ingest import ingest_figures
from tickwatch.bench.storm import storm_figures
from tickwatch.bench.webhooks import webhook_figures

SECTIONS = ("pipeline", "api", "bot", "digest", "storm", "detection", "webhooks", "feeds", "ingest")


def run_sections(settings: Settings, console: Console, only: Iterable[str] = (), **pipeline_options: int) -> None:
    """Run the named sections (all when none is named), so one figure can be reproduced quickly."""
    chosen = list(dict.fromkeys(only)) or list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown bench section {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    if "pipeline" in chosen:
        pipeline.run(settings, console, **pipeline_options)
    if "api" in chosen:
        api_figures(settings, console)
    if "bot" in chosen:
        bot_price_figures(settings, console)
    if "digest" in chosen:
        digest_figures(settings, console)
    if "storm" in chosen:
        storm_figures(settings, console)
    if "detection" in chosen:
        detection_cost(console)
    if "webhooks" in chosen:
        webhook_figures(settings, console)
    if "feeds" in chosen:
        feed_check_figures(settings, console)
    if "ingest" in chosen:
        ingest_figures(settings, console)
