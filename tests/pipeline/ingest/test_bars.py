"""Unit tests for pipeline.bars: layouts, times and zones, checks and repairs, and how a bar becomes ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.ingest.bars import (
    Bar,
    BarClock,
    BarFileError,
    bar_ticks,
    detect_layout,
    epoch_to_utc,
    merge_streams,
    parse_columns,
    parse_zone,
    read_bars,
    rows_out_of_order,
    split_volume,
)

DATA = Path(__file__).resolve().parents[2] / "data"
NEW_YORK = parse_zone("America/New_York")
START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
HEADER = "timestamp,open,high,low,close,volume\n"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- how a bar becomes ticks --------------------------------------------------------------------------


def test_a_minute_bar_is_four_ticks_at_15_second_steps_open_extremes_close() -> None:
    up = Bar(START, open=100.0, high=101.5, low=99.5, close=101.0, volume=1002.0)
    down = Bar(START, open=101.0, high=102.0, low=98.0, close=99.0, volume=10.5)
    ticks = bar_ticks("TSLA", up, timedelta(minutes=1))
    assert [(t.timestamp - START).total_seconds() for t in ticks] == [0, 15, 30, 45]
    assert [t.price for t in ticks] == [100.0, 99.5, 101.5, 101.0]  # an up bar dips first, then rallies
    assert all(t.source == "bars" and t.trusted for t in ticks)  # the vendor's filtered prints: trusted
    assert [t.volume for t in ticks] == [251, 251, 250, 250]
    assert [t.price for t in bar_ticks("TSLA", down, timedelta(minutes=1))] == [101.0, 102.0, 98.0, 99.0]
    assert [t.volume for t in bar_ticks("TSLA", down, timedelta(minutes=1))] == [2.625] * 4


def test_a_close_only_row_is_one_tick_and_a_daily_bar_spreads_over_the_day() -> None:
    assert [(t.price, t.volume) for t in bar_ticks("X", Bar(START, close=5.0), timedelta(minutes=1))] == [(5.0, None)]
    daily = bar_ticks("X", Bar(START, open=1, high=2, low=1, close=2), timedelta(days=1))
    assert [t.timestamp.hour for t in daily] == [14, 20, 2, 8]


@pytest.mark.parametrize(("volume", "parts", "shares"), [(7, 4, [2, 2, 2, 1]), (2, 1, [2]), (1.5, 2, [0.75, 0.75])])
def test_split_volume_adds_up(volume: float, parts: int, shares: list[float]) -> None:
    assert split_volume(float(volume), parts) == shares


# --- times ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1_795_444_200, 1_795_444_200_000, 1_795_444_200_000_000, 1_795_444_200_000_000_000])
def test_epoch_seconds_ms_us_ns_by_magnitude(value: int) -> None:
    assert epoch_to_utc(value) == START


def test_naive_times_are_wall_clock_in_the_zone_across_dst() -> None:
    clock = BarClock(NEW_YORK)
    assert clock.read("2026-03-06 09:30:00")[0] == utc("2026-03-06T14:30")  # EST, UTC-5
    assert clock.read("2026-03-09 09:30:00")[0] == utc("2026-03-09T13:30")  # EDT, UTC-4
    assert clock.read("2026-11-23T09:30:00-05:00") == (START, False)  # an offset wins over the zone
    assert clock.read("2026-11-23") == (utc("2026-11-23T05:00"), True)  # a date: a daily bar
    assert BarClock().read("2026-11-23 14:30")[0] == START  # default UTC


def test_a_skipped_local_time_is_an_error_that_suggests_the_zone_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"2026-03-08 02:30 does not exist in America/New_York.*--tz"):
        BarClock(NEW_YORK).read("2026-03-08 02:30:00")


def test_the_repeated_fall_back_hour_is_read_in_file_order() -> None:
    clock = BarClock(NEW_YORK)
    times = [clock.read(f"2026-11-01 {hhmm}")[0] for hhmm in ("00:59", "01:00", "01:59", "01:00", "01:30", "02:00")]
    assert times == [utc(f"2026-11-01T{hhmm}") for hhmm in ("04:59", "05:00", "05:59", "06:00", "06:30", "07:00")]
    alone = BarClock(NEW_YORK)
    assert alone.read("2026-11-01 01:30")[0] == utc("2026-11-01T05:30")  # once: the first (daylight) instant


def test_unknown_zone_and_unreadable_time() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'; use an IANA name"):
        parse_zone("Mars/Olympus")
    with pytest.raises(ValueError, match="neither ISO-8601"):
        BarClock().read("yesterday")


# --- layouts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "name", "time", "close"),
    [
        ([" timestamp ", " open ", "high", "low", "close", "volume"], "documented", (0,), (4,)),
        (["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"], "Yahoo Finance", (0,), (4,)),
        (["Datetime", "Open", "High", "Low", "Close", "Adj Close", "Volume"], "Yahoo Finance", (0,), (4,)),
        (
            [
                "open_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "close_time",
                "quote_volume",
                "count",
                "taker_buy_volume",
                "taker_buy_quote_volume",
                "ignore",
            ],
            "kline",
            (0,),
            (4,),
        ),
        (["Date", "Time", "Open", "High", "Low", "Close", "Volume"], "documented", (0, 1), (5,)),
        (["2026-11-23T14:30:00Z", "1", "2", "1", "2", "4"], "documented", (0,), (4,)),
        (["1795444200000", "1", "2", "1", "2", "4", "1795444259999", "8", "3", "2", "4", "0"], "kline", (0,), (4,)),
    ],
)
def test_layouts_are_recognised_from_the_first_row(row: list[str], name: str, time: tuple, close: tuple) -> None:
    layout = detect_layout(row)
    assert (layout.name, layout.positions["time"], layout.positions["close"]) == (name, time, close)
    assert layout.header == (not row[1].isdigit())


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (["Date", "Price"], "header Date,Price has no open, high, low, close column"),
        (["timestamp", "open", "low", "close", "volume"], "has no high column"),
        (["2026-11-23", "1", "2"], "no header and 3 fields"),
    ],
)
def test_unknown_layouts_say_what_is_expected_and_how_to_map(row: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown layout: .*{problem}.*--columns"):
        detect_layout(row)


def test_columns_map_names_numbers_and_joined_date_time() -> None:
    assert parse_columns("time=Date,close=Close,volume=Vol") == {"time": "Date", "close": "Close", "volume": "Vol"}
    mapped = detect_layout(["Ticker", "Date", "Time", "Last"], parse_columns("time=date+TIME,close=Last"))
    assert (mapped.name, mapped.positions) == ("--columns", {"time": (1, 2), "close": (3,)})
    numbered = detect_layout(["1795444200", "7", "9"], parse_columns("time=1,close=3"))
    assert (numbered.header, numbered.positions) == (False, {"time": (0,), "close": (2,)})
    with pytest.raises(ValueError, match="no column 'Close' in header Date,Last"):
        detect_layout(["Date", "Last"], parse_columns("time=Date,close=Close"))


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("close=Close", "needs time"),
        ("time=Date,price=Close", "bad item 'price=Close'"),
        ("time=Date,close=Close,open=Open", "not high, low"),
        ("time=Date,close", "bad item 'close'"),
    ],
)
def test_columns_reject_with_the_form(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_columns(spec)


# --- whole files: checks and repairs -------------------------------------------------------------------


def test_out_of_order_rows_are_sorted_and_duplicates_kept_once_both_counted() -> None:
    messy = read_bars(DATA / "messy_export.csv", "abc")
    assert [bar.opened.minute for bar in messy.bars] == [30, 31, 32, 33, 34]
    assert messy.bars[3].close == 10.3  # the first 09:33 row, not the later 99.0 duplicate
    assert (messy.out_of_order, messy.duplicates, messy.skipped) == (1, 1, [])
    assert "5 bars of 1 min" in messy.summary()
    assert "1 row out of order (sorted), 1 duplicate timestamp (kept the first)" in messy.summary()


def test_a_file_of_one_bar_says_so_in_the_singular(tmp_path: Path) -> None:
    one = read_bars(write(tmp_path, "one.csv", f"{HEADER}2026-11-23T14:30:00Z,1,1,1,1,1\n"), "TSLA")
    assert "1 bar of 1 min" in one.summary() and "→ 4 ticks" in one.summary()


@pytest.mark.parametrize(("times", "moved"), [([1, 2, 3], 0), ([1, 2, 5, 3, 4, 6], 1), ([3, 2, 1], 2), ([1, 1, 2], 0)])
def test_rows_out_of_order_counts_rows_to_move(times: list[int], moved: int) -> None:
    assert rows_out_of_order([START + timedelta(minutes=m) for m in times]) == moved


def test_a_bad_row_stops_the_read_naming_file_and_line_or_is_skipped() -> None:
    with pytest.raises(BarFileError, match=r"bad_row\.csv:3: open 'null' is not a number \(nothing was published"):
        read_bars(DATA / "bad_row.csv", "AAPL")
    skipped = read_bars(DATA / "bad_row.csv", "AAPL", skip_bad_rows=True)
    assert [bar.opened.day for bar in skipped.bars] == [18, 20]
    assert skipped.skipped == [f"{DATA / 'bad_row.csv'}:3: open 'null' is not a number"]
    assert "1 bad row skipped" in skipped.summary()


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2026-11-23T14:31:00Z,1,2,x,1,5", "low 'x' is not a number"),
        ("2026-11-23T14:31:00Z,1,2,1.5,1,5", "low <= open"),
        ("2026-11-23T14:31:00Z,1,2,1,1,-5", "volume must be >= 0"),
        ("2026-11-23T14:31:00Z,1,2,1,1,nan", "finite"),
        ("yesterday,1,2,1,1,5", "neither ISO-8601"),
        ("2026-11-23T14:31:00Z,1,2,1", "4 fields where the header has 6"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path, "bad.csv", f"{HEADER}2026-11-23T14:30:00Z,1,2,1,1,5\n\n{row}\n")
    with pytest.raises(BarFileError, match=rf"bad\.csv:4: .*{problem}"):
        read_bars(path, "TSLA")


def test_empty_files_and_files_of_bad_rows_have_nothing_to_replay(tmp_path: Path) -> None:
    with pytest.raises(BarFileError, match="no bars to replay"):
        read_bars(write(tmp_path, "empty.csv", HEADER), "TSLA")
    with pytest.raises(BarFileError, match=r"no bars to replay \(1 bad row skipped\)"):
        read_bars(write(tmp_path, "junk.csv", f"{HEADER}x,1,1,1,1,1\n"), "TSLA", skip_bad_rows=True)


def test_a_bar_closer_to_the_next_than_usual_is_squeezed_so_ticks_stay_in_order(tmp_path: Path) -> None:
    rows = "".join(f"2026-11-23T14:{m}Z,1,2,1,2,4\n" for m in ("30:00", "31:00", "32:00", "32:20", "33:20"))
    ticks = list(read_bars(write(tmp_path, "odd.csv", HEADER + rows), "X").ticks())
    assert [t.timestamp for t in ticks] == sorted(t.timestamp for t in ticks)
    assert [(t.timestamp - START).total_seconds() for t in ticks[8:12]] == [120, 125, 130, 135]


def test_merge_streams_interleaves_by_time_keeping_ties_in_stream_order(tmp_path: Path) -> None:
    a = read_bars(write(tmp_path, "a.csv", f"{HEADER}2026-11-23T14:30Z,1,2,1,2,4\n2026-11-23T14:31Z,2,2,2,2,4\n"), "A")
    b = read_bars(write(tmp_path, "b.csv", f"{HEADER}2026-11-23T14:31Z,5,6,5,6,4\n2026-11-23T14:32Z,6,6,6,6,4\n"), "B")
    merged = list(merge_streams(a.ticks(), b.ticks()))
    assert "".join(t.symbol for t in merged) == "AAAAABABABABBBBB"


def hostile_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2026-11-23 14:30,10,11,9,10,100\n"
        + "2026-11-23 14:31,"
        + "9" * 140_000
        + ",11,9,10,100\n"  # a field over the csv module's limit
        + "9999-12-31 23:59,10,11,9,10,100\n"  # 23:59 in New York is year 10000 in UTC
        + "2026-11-23 14:32,10,11,9,10,100\n"
    )
    return path


def test_a_hostile_file_stops_with_file_and_line_before_anything_is_published(tmp_path: Path):
    with pytest.raises(BarFileError, match=r"hostile\.csv:3: unreadable CSV \(field larger than field limit"):
        read_bars(hostile_file(tmp_path), "AAPL", zone=ZoneInfo("America/New_York"))


def test_a_hostile_file_with_skip_bad_rows_skips_and_counts_them(tmp_path: Path):
    read = read_bars(hostile_file(tmp_path), "AAPL", zone=ZoneInfo("America/New_York"), skip_bad_rows=True)
    assert len(read.bars) == 2 and len(read.skipped) == 2
    assert read.skipped[0].endswith("hostile.csv:3: unreadable CSV (field larger than field limit (131072))")
    assert "hostile.csv:4:" in read.skipped[1]
