"""`tickwatch generate --csv` end to end: what reaches the real Kafka from the small files in tests/data.

Each test publishes to a private single-partition topic (so the order on it is the publish order) and
deletes it afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition
from typer.testing import CliRunner

from pipeline.ingest.topics import ensure_topics
from pipeline.schema import Tick
from pipeline.settings import Settings
from tickwatch.cli import app

DATA = Path(__file__).resolve().parents[2] / "data"
runner = CliRunner()


@pytest.fixture
def topic(real_stack: Settings) -> Iterator[str]:
    name = f"tw-csv-{uuid.uuid4().hex[:8]}"
    ensure_topics(real_stack, {name: 1})
    yield name
    admin = KafkaAdminClient(bootstrap_servers=real_stack.kafka_bootstrap)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def published(settings: Settings, topic: str) -> list[Tick]:
    """Every tick on the topic, in order, checking each message is keyed by its symbol."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        records = []
        while consumer.position(partition) < end:
            for batch in consumer.poll(timeout_ms=1000).values():
                records += batch
    finally:
        consumer.close()
    ticks = [Tick.model_validate_json(record.value) for record in records]
    assert [record.key.decode() for record in records] == [tick.symbol for tick in ticks]
    return ticks


def generate(topic: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["generate", "--topic", topic, *args], terminal_width=300)
    return result.exit_code, result.output


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_a_messy_export_is_sorted_deduplicated_reported_and_read_in_its_zone(real_stack: Settings, topic: str):
    code, output = generate(topic, "--csv", f"ABC={DATA / 'messy_export.csv'}", "--tz", "America/New_York")
    assert code == 0, output
    assert "5 bars of 1 min" in output and "times in America/New_York" in output
    assert "1 row out of order (sorted), 1 duplicate timestamp (kept the first)" in output
    ticks = published(real_stack, topic)
    assert len(ticks) == 20
    assert [t.timestamp for t in ticks] == [at("2026-11-23T14:30:00Z") + timedelta(seconds=15 * i) for i in range(20)]
    assert [t.price for t in ticks[8:16]] == [10.2, 10.1, 10.3, 10.3, 10.3, 10.2, 10.4, 10.3]  # 09:32, then 09:33
    assert 99.0 not in {t.price for t in ticks}  # the later duplicate of 09:33 was dropped


def test_a_bad_row_publishes_nothing_from_any_file_unless_skipped(real_stack: Settings, topic: str):
    files = ["--csv", f"ABC={DATA / 'messy_export.csv'}", "--csv", f"AAPL={DATA / 'bad_row.csv'}"]
    code, output = generate(topic, *files)
    assert code == 2
    assert f"{DATA / 'bad_row.csv'}:3: open 'null' is not a number (nothing was published" in output
    assert published(real_stack, topic) == []

    code, output = generate(topic, *files, "--skip-bad-rows")
    assert code == 0, output
    assert "1 bad row skipped" in output and f"skipped {DATA / 'bad_row.csv'}:3: open 'null'" in output
    ticks = published(real_stack, topic)
    assert len(ticks) == 20 + 8
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)
    assert sorted({t.timestamp.day for t in ticks if t.symbol == "AAPL"}) == [18, 20]


def test_naive_times_follow_dst_in_the_given_zone(real_stack: Settings, topic: str):
    code, output = generate(topic, "--csv", f"SPY={DATA / 'dst_new_york.csv'}", "--tz", "America/New_York")
    assert code == 0, output
    opens = published(real_stack, topic)[::4]
    assert [t.timestamp for t in opens] == [
        at(f"{day}Z")
        for day in (
            "2026-03-06T20:58",
            "2026-03-06T20:59",  # 15:58 EST
            "2026-03-09T13:30",
            "2026-03-09T13:31",  # 09:30 EDT: one hour less to UTC after the change
            "2026-11-01T05:59",
            "2026-11-01T06:00",
        )
    ]  # 01:59 EDT, then the clocks go back: 01:00 EST


@pytest.mark.parametrize(
    ("file", "args", "count", "first", "last"),
    [
        (
            "documented_padded.csv",
            ["--tz", "America/New_York"],
            8,
            ("2026-11-23T14:30:00Z", 100.0, 251),
            ("2026-11-23T14:31:45Z", 99.0, 2.625),
        ),
        ("documented_no_header.csv", [], 8, ("2026-11-23T14:30:00Z", 100.0, 100), ("2026-11-23T14:31:45Z", 100.0, 0)),
        (
            "yahoo_daily.csv",
            ["--tz", "America/New_York"],
            8,  # a day's four ticks at 00:00, 06:00, 12:00, 18:00
            ("2026-11-19T05:00:00Z", 230.0, 12_000_000),
            ("2026-11-20T23:00:00Z", 221.5, 22_750_000),
        ),
        ("yahoo_intraday.csv", [], 12, ("2026-03-06T20:59:00Z", 210.0, 300), ("2026-03-09T13:31:45Z", 203.5, 1000)),
        ("binance_klines.csv", [], 8, ("2026-11-23T14:10:00Z", 95000.0, 3.125), ("2026-11-23T14:11:45Z", 94100.0, 7)),
        (
            "binance_klines_header_us.csv",
            [],
            4,
            ("2026-11-23T14:10:00Z", 3300.0, 25),
            ("2026-11-23T14:10:45Z", 3305.0, 25),
        ),
        (
            "custom_columns.csv",
            ["--columns", "time=Date+Time,close=Last,volume=Vol", "--tz", "America/New_York"],
            2,
            ("2026-11-23T14:30:00Z", 50.25, 300),
            ("2026-11-23T14:31:00Z", 50.75, 200),
        ),
    ],
)
def test_each_layout_replays_without_editing(
    real_stack: Settings, topic: str, file: str, args: list[str], count: int, first: tuple, last: tuple
):
    code, output = generate(topic, "--csv", f"X={DATA / file}", *args)
    assert code == 0, output
    assert f"published {count} ticks" in output
    ticks = published(real_stack, topic)
    assert [(t.timestamp, t.price, t.volume) for t in (ticks[0], ticks[-1])] == [
        (at(when), price, volume) for when, price, volume in (first, last)
    ]
    assert len(ticks) == count and {t.symbol for t in ticks} == {"X"}


def test_shift_to_moves_the_whole_replay(real_stack: Settings, topic: str):
    code, output = generate(topic, "--csv", f"ABC={DATA / 'messy_export.csv'}", "--shift-to", "2030-01-02T00:00:00Z")
    assert code == 0, output
    assert "the replay starts 2030-01-02 00:00:00 UTC" in output
    ticks = published(real_stack, topic)
    assert [t.timestamp for t in ticks] == [at("2030-01-02T00:00:00Z") + timedelta(seconds=15 * i) for i in range(20)]

    before = datetime.now(UTC).replace(microsecond=0)
    code, output = generate(topic, "--csv", f"ABC={DATA / 'messy_export.csv'}", "--shift-to", "now")
    assert code == 0, output
    live = published(real_stack, topic)[20:]
    assert before <= live[0].timestamp <= datetime.now(UTC)
    assert live[-1].timestamp - live[0].timestamp == timedelta(minutes=4, seconds=45)


def test_shift_to_moves_a_scenario_and_its_ground_truth(real_stack: Settings, topic: str, tmp_path: Path):
    truth = tmp_path / "truth.jsonl"
    code, output = generate(
        topic,
        "--symbol",
        "TSLA",
        "--duration",
        "2m",
        "--inject",
        "drop:TSLA:8%:30s@1m",
        "--shift-to",
        "2030-01-02T00:00:00Z",
        "--ground-truth",
        str(truth),
    )
    assert code == 0, output
    ticks = published(real_stack, topic)
    assert (len(ticks), ticks[0].timestamp) == (120, at("2030-01-02T00:00:00Z"))
    event = json.loads(truth.read_text())
    assert (event["start"], event["end"]) == ("2030-01-02T00:01:00.000Z", "2030-01-02T00:01:30.000Z")


def test_shifted_to_now_and_replayed_fast_warns_before_ticks_would_be_dead_lettered(real_stack: Settings, topic: str):
    code, output = generate(
        topic, "--symbol", "TSLA", "--duration", "3d", "--interval", "1h", "--count", "2", "--shift-to", "now"
    )
    assert code == 0, output
    assert "note: at this speed the last ticks are dated 72.0 h ahead of the clock" in output
    assert "TICKWATCH_MAX_FUTURE_SECONDS (86400 s)" in output
    code, output = generate(
        topic,
        "--symbol",
        "TSLA",
        "--duration",
        "3d",
        "--interval",
        "1h",
        "--count",
        "2",
        "--shift-to",
        "2026-01-01T00:00:00Z",
    )
    assert code == 0 and "note:" not in output, output
