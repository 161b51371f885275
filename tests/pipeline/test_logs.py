"""Every process logs one way: text, or JSON lines carrying the anomaly id, symbol and delivery id as fields
(a real worker, bridge and Kafka for the end-to-end case)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipeline import logs
from pipeline.ingest.generator import Scenario
from pipeline.ingest.publish import publish
from pipeline.settings import Settings
from tests.conftest import Namespace, wait_for
from tickwatch.cli import app


def emitted(settings: Settings, level: str | None, emit) -> str:
    buffer = io.StringIO()
    config = logs.config(settings, level)
    config["handlers"]["stderr"]["stream"] = buffer
    logging.config.dictConfig(config)
    try:
        emit(logging.getLogger("tickwatch.test"))
    finally:
        logging.config.dictConfig(logs.config(Settings()))
    return buffer.getvalue()


def test_json_lines_carry_the_fields_and_text_lines_stay_readable():
    line = emitted(
        Settings(log_format="json"),
        None,
        lambda log: log.warning("sent %s", "x", extra=logs.fields(anomaly_id="a-1", symbol="TSLA", delivery_id=None)),
    )
    record = json.loads(line)
    assert record["message"] == "sent x" and record["level"] == "WARNING" and record["name"] == "tickwatch.test"
    assert record["anomaly_id"] == "a-1" and record["symbol"] == "TSLA" and "delivery_id" not in record
    text = emitted(Settings(), None, lambda log: log.warning("sent %s", "x", extra=logs.fields(symbol="TSLA")))
    assert text.rstrip().endswith("WARNING tickwatch.test: sent x")


def test_the_level_comes_from_the_flag_over_the_setting():
    quiet = emitted(Settings(log_level="warning"), None, lambda log: log.info("hidden"))
    assert quiet == ""
    assert "shown" in emitted(Settings(log_level="warning"), "debug", lambda log: log.debug("shown"))
    with pytest.raises(ValueError):
        Settings(log_level="loud")


@pytest.mark.parametrize("command", [["worker"], ["bridge"], ["api"], ["bot"]])
def test_every_daemon_takes_the_same_log_level_flag(command: list[str]):
    help_text = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output
    assert "--log-level" in help_text


def test_a_worker_logs_each_alert_as_json_with_its_anomaly_id_and_symbol(namespace: Namespace):
    ns = namespace
    ns.env["TICKWATCH_LOG_FORMAT"] = "json"
    scenario = Scenario.build(
        symbols=["TSLA", "AAPL"],
        start=datetime(2026, 11, 23, 14, 0, tzinfo=UTC),
        interval_s=1,
        duration="8m",
        seed=5,
        events=["drop:TSLA:8%:60s@4m"],
    )
    ns.split_workers()
    ns.bridge()
    publish(scenario.ticks(), ns.settings, progress=False)

    def alert_lines() -> list[dict]:
        found = []
        for log in ns.log_dir.glob("worker-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"anomaly.detected' in line:
                    found.append(json.loads(line))
        return found

    (record,) = wait_for(alert_lines, timeout=60, what="the alert's JSON log line")
    assert record["symbol"] == "TSLA" and record["anomaly_id"] == record["alert"]["data"]["id"]
    assert record["name"] == "tickwatch.alerts" and record["level"] == "WARNING"
