"""One logging set-up for every process (worker, bridge, API, bot, commands): text for a terminal, or JSON
lines for a log shipper (`TICKWATCH_LOG_FORMAT=json`), at `TICKWATCH_LOG_LEVEL` or the command's --log-level.

Log calls that concern one alert pass its identity as fields (`extra=fields(anomaly_id=…, symbol=…)`): JSON
lines carry them as keys, so a shipper can follow one anomaly or one webhook delivery across processes.
"""

from __future__ import annotations

import logging.config
from typing import Any

from pipeline.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries that log every reconnect or request themselves; Tickwatch logs the outage once (pipeline.outage).
QUIET = {"kafka": "CRITICAL", "elastic_transport": "WARNING", "httpx": "WARNING"}


def fields(**values: Any) -> dict[str, Any]:
    """The `extra` of a log call about one alert or delivery: None values are left out."""
    return {key: value for key, value in values.items() if value is not None}


def config(settings: Settings, level: str | None = None) -> dict[str, Any]:
    """The dictConfig of this process (also handed to uvicorn, so its access and error lines match)."""
    chosen = (level or settings.log_level).upper()
    formatter: dict[str, Any] = (
        {"()": "pythonjsonlogger.json.JsonFormatter", "format": JSON_FORMAT, "rename_fields": {"levelname": "level"}}
        if settings.log_format == "json"
        else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tickwatch": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "tickwatch", "stream": "ext://sys.stderr"}
        },
        "root": {"level": chosen, "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": quiet} for name, quiet in QUIET.items()},
            # uvicorn's own loggers propagate to the root's handler instead of printing in their own format
            **{name: {"level": chosen, "handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.access")},
            "uvicorn.error": {"level": chosen, "propagate": True},
        },
    }


def configure(settings: Settings, level: str | None = None) -> None:
    """Set up this process's logging once, as `config` says."""
    logging.config.dictConfig(config(settings, level))
