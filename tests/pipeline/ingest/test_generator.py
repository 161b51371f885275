"""Unit tests for pipeline.generator: deterministic markets, exact injected moves, pacing."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.durations import format_duration, parse_seconds, parse_window
from pipeline.ingest.generator import (
    InjectedEvent,
    Scenario,
    default_symbols,
    load_scenario,
    pace,
    parse_inject,
    parse_shift_to,
    parse_speed,
)
from pipeline.schema import Tick

START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def scenario(**options: Any) -> Scenario:
    defaults: dict[str, Any] = {"symbols": ["TSLA", "AAPL", "BTC-USD"], "start": START, "duration": "10m"}
    return Scenario.build(**{**defaults, **options})


def prices(ticks: list[Tick], symbol: str) -> list[float]:
    return [tick.price for tick in ticks if tick.symbol == symbol]


# --- synthetic market ------------------------------------------------------------------------------


def test_same_seed_same_market_other_seed_other_market() -> None:
    first, again, other = (list(scenario(seed=seed).ticks()) for seed in (7, 7, 8))
    assert first == again
    assert prices(first, "TSLA") != prices(other, "TSLA")


def test_all_symbols_tick_together_in_time_order() -> None:
    run = scenario(interval_s="2s", duration="1m")
    ticks = list(run.ticks())
    assert len(ticks) == run.tick_count == 30 * 3
    assert [t.symbol for t in ticks[:4]] == ["TSLA", "AAPL", "BTC-USD", "TSLA"]
    assert [t.timestamp for t in ticks[::3]] == [START + timedelta(seconds=2 * i) for i in range(30)]
    assert all(t.volume is not None and t.volume >= 1 and t.volume.is_integer() for t in ticks)


def test_count_caps_the_number_of_ticks() -> None:
    assert len(list(scenario(count=7).ticks())) == 7


def test_noise_is_realistic_not_a_crash() -> None:
    """Ten minutes of 60 %-vol TSLA must stay well inside the 5 % drop threshold, or every run alerts."""
    tsla = prices(list(scenario(seed=1).ticks()), "TSLA")
    assert tsla[0] == 250.0
    assert min(tsla) / tsla[0] > 0.97 and max(tsla) / tsla[0] < 1.03
    assert len(set(tsla)) > 100


def test_injected_drop_is_exact_relative_to_the_same_market_without_it() -> None:
    calm = prices(list(scenario(seed=3).ticks()), "TSLA")
    crash = prices(list(scenario(seed=3, events=["drop:TSLA:8%:90s@2m"]).ticks()), "TSLA")
    ratio = [c / p for c, p in zip(crash, calm, strict=True)]
    assert ratio[:121] == pytest.approx([1.0] * 121, rel=1e-4)
    assert ratio[165] == pytest.approx(math.sqrt(0.92), rel=1e-4)  # half way, linear in log-price
    assert ratio[210:] == pytest.approx([0.92] * len(ratio[210:]), rel=1e-4)


def test_events_on_other_symbols_leave_a_symbol_alone() -> None:
    calm = list(scenario(seed=3).ticks())
    rise = list(scenario(seed=3, events=["rise:BTC-USD:10%:1m@1m"]).ticks())
    assert prices(rise, "TSLA") == prices(calm, "TSLA")
    assert prices(rise, "BTC-USD")[-1] / prices(calm, "BTC-USD")[-1] == pytest.approx(1.10, rel=1e-4)


def test_event_symbols_join_the_scenario_and_ground_truth_has_wall_times(tmp_path: Path) -> None:
    run = scenario(events=["drop:xyz:5:30s@1m"])
    assert run.symbols == ("TSLA", "AAPL", "BTC-USD", "XYZ")
    path = tmp_path / "truth.jsonl"
    run.write_ground_truth(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert (
        records
        == run.ground_truth()
        == [
            {
                "kind": "drop",
                "symbol": "XYZ",
                "pct": 5.0,
                "duration_s": 30.0,
                "start": "2026-11-23T14:31:00.000Z",
                "end": "2026-11-23T14:31:30.000Z",
            }
        ]
    )


def test_default_symbols_are_known_names_then_synthetic() -> None:
    twelve = default_symbols(12)
    assert {"AAPL", "TSLA", "BRK.B", "BTC-USD", "ETH-USD", "SOL-USD"} <= set(twelve)
    twenty = default_symbols(20)
    assert twenty[:12] == twelve and twenty[-1] == "SYM020" and len(set(twenty)) == 20


# --- injected event specs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("drop:TSLA:8%:90s@10m", InjectedEvent("drop", "TSLA", 8.0, 90.0, 600.0)),
        (" RISE:btc-usd:12:2.5m@1h", InjectedEvent("rise", "BTC-USD", 12.0, 150.0, 3600.0)),
        ("drop:NASDAQ:AAPL:5:30@0", InjectedEvent("drop", "NASDAQ:AAPL", 5.0, 30.0, 0.0)),
    ],
)
def test_parse_inject_reads_the_documented_form(spec: str, expected: InjectedEvent) -> None:
    assert parse_inject(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "drop:TSLA:8%",
        "crash:TSLA:8:90s@1m",
        "drop:TSLA:100%:1m@0",
        "drop:TSLA:-3:1m@0",
        "drop::8:1m@0",
        "drop:TSLA:x:1m@0",
        "drop:TSLA:8:1y@0",
        "drop:TS LA:8:1m@0",
        "drop:TSLA:8:1m@",
        "",
    ],
)
def test_parse_inject_rejects_bad_specs_showing_the_form(spec: str) -> None:
    with pytest.raises(ValueError, match="expected kind:symbol:pct%:duration@offset"):
        parse_inject(spec)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1.5h", 5400),
        (" 45 ", 45),
        (2.5, 2.5),
        ("2h30m", 9000),
        ("1d", 86400),
        ("1h 15m", 4500),
    ],
)
def test_parse_seconds(text: str | float, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5m", "1h-", "abc", "nan"])
def test_parse_seconds_rejects_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"e\.g\. 90s"):
        parse_seconds(text)


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (9000, "2h30m"), (86400, "1d"), (45, "45s"), (0, "0s")])
def test_format_duration_round_trips(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_seconds(text) == seconds


def test_windows_are_positive_and_bounded() -> None:
    assert parse_window("2h30m").total_seconds() == 9000
    for bad in ("0m", "40d"):
        with pytest.raises(ValueError, match="window"):
            parse_window(bad)


# --- scenario files --------------------------------------------------------------------------------


def test_scenario_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "crash.toml"
    path.write_text(
        '[scenario]\nsymbols = ["tsla", "ETH-USD"]\ninterval_s = 0.5\nduration = "5m"\nseed = 11\n'
        'start = "2026-11-23T14:30:00Z"\n\n'
        '[[events]]\nkind = "drop"\nsymbol = "TSLA"\npct = "8%"\nduration = "90s"\nat = "1m"\n\n'
        '[[events]]\nkind = "rise"\nsymbol = "ETH-USD"\npct = 4\nduration = 30\nat = 120\n'
    )
    loaded = load_scenario(path)
    assert loaded == Scenario(
        symbols=("TSLA", "ETH-USD"),
        start=START,
        interval_s=0.5,
        duration_s=300.0,
        seed=11,
        events=(InjectedEvent("drop", "TSLA", 8.0, 90.0, 60.0), InjectedEvent("rise", "ETH-USD", 4.0, 30.0, 120.0)),
    )
    assert loaded.tick_count == 1200
    assert list(loaded.ticks()) == list(
        scenario(
            symbols=["TSLA", "ETH-USD"],
            interval_s=0.5,
            duration="5m",
            seed=11,
            events=["drop:TSLA:8:90s@1m", "rise:ETH-USD:4:30s@2m"],
        ).ticks()
    )


def test_scenario_file_symbol_count_and_typos(tmp_path: Path) -> None:
    good = tmp_path / "count.toml"
    good.write_text("[scenario]\nsymbol_count = 14\nduration = 60\nstart = 2026-11-23T14:30:00Z\n")
    assert load_scenario(good).symbols[-2:] == ("AMD", "V")
    typo = tmp_path / "typo.toml"
    typo.write_text('[scenario]\nsymbol_count = 3\ndurations = "5m"\n')
    with pytest.raises(ValueError, match=r"typo\.toml: \[scenario\]: unknown key\(s\) durations"):
        load_scenario(typo)


# --- pacing ----------------------------------------------------------------------------------------


class FakeClock:
    """Wall time that only moves when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def ticks_at(*seconds: float) -> list[Tick]:
    return [Tick(symbol="TSLA", timestamp=START + timedelta(seconds=s), price=1.0) for s in seconds]


def test_pace_runs_event_time_speed_times_faster_than_wall_time() -> None:
    clock = FakeClock()
    paced = pace(ticks_at(0, 60, 60, 180), 60, clock=clock, sleep=clock.sleep)
    assert next(paced).timestamp == START and clock.sleeps == []
    clock.now += 0.25  # the consumer spent a quarter second on the first tick: that time counts
    assert len(list(paced)) == 3
    assert clock.sleeps == pytest.approx([0.75, 2.0])
    assert clock.now == pytest.approx(1003.0)


def test_pace_never_waits_for_late_ticks_or_when_unpaced() -> None:
    clock = FakeClock()
    assert len(list(pace(ticks_at(0, 30, 10), 1, clock=clock, sleep=clock.sleep))) == 3
    assert clock.sleeps == [30.0]
    assert len(list(pace(ticks_at(0, 30), None, clock=clock, sleep=clock.sleep))) == 2
    assert clock.sleeps == [30.0]
    with pytest.raises(ValueError, match="speed must be > 0"):
        next(pace(ticks_at(0), 0, clock=clock, sleep=clock.sleep))


@pytest.mark.parametrize(("text", "speed"), [("max", None), ("MAX", None), ("1", 1.0), ("60", 60.0), ("0.5", 0.5)])
def test_parse_speed(text: str, speed: float | None) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["fast", "0", "-2", "nan", "inf", ""])
def test_parse_speed_rejects_with_the_choices(text: str) -> None:
    with pytest.raises(ValueError, match=r"speed must be max or a number > 0 \(1 = real time"):
        parse_speed(text)


def test_shift_to_now_or_an_iso_start() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    assert before <= parse_shift_to("now") <= datetime.now(UTC)
    assert parse_shift_to("2026-11-23T09:30:00-05:00") == START
    with pytest.raises(ValueError, match="--shift-to takes now or an ISO-8601 start"):
        parse_shift_to("tomorrow")
