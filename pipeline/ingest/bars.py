"""Market data files as bars, and bars as ticks: the `tickwatch generate --csv` replay.

A file is read and checked whole before anything is published, so a bad row never leaves half a file in
Kafka. Layouts are recognised from the header or the first row (the documented one, Yahoo Finance, kline
exports, or a `--columns` mapping); naive times are read in a time zone, DST-correct; rows out of order are
sorted and duplicate timestamps kept once, and both are counted so the user sees what was repaired.
"""

from __future__ import annotations

import _csv
import csv
import heapq
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.schema import BAR_SOURCE, Tick, normalise_symbol

ROLES = ("time", "open", "high", "low", "close", "volume")
PRICE_ROLES = ("open", "high", "low", "close")
DOCUMENTED_HEADER = "timestamp,open,high,low,close,volume"
# Header names each role answers to, first match wins (compared stripped and lower-cased).
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "time": ("timestamp", "datetime", "open_time", "open time", "opentime", "date", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume", "vol"),
}
KLINE_WIDTH = 12  # open_time, open, high, low, close, volume, close_time, quote volume, trades, taker x2, ignore
DEFAULT_BAR = timedelta(minutes=1)
DAILY_BAR = timedelta(days=1)
COLUMNS_FORM = (
    "role=column,... with roles time, open, high, low, close, volume, e.g. time=Date,close=Close "
    "(time=Date+Time joins two columns)"
)


class BarFileError(ValueError):
    """A file that cannot be replayed; the message names the file (and line) and what to do."""


# --- time zones and time cells -------------------------------------------------------------------


def parse_zone(name: str) -> tzinfo:
    """An IANA zone such as `America/New_York` (or `UTC`), from the system's time zone database."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as America/New_York or UTC") from None


def epoch_to_utc(number: float) -> datetime:
    """Epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude: seconds reach
    1e11 only in the year 5138, so each unit has a range of its own for any date after 1973."""
    for scale in (1, 1_000, 1_000_000, 1_000_000_000):
        if abs(number) < 1e11 * scale:
            return datetime.fromtimestamp(number / scale, tz=UTC)
    raise ValueError(f"epoch time {number!r} is out of range")


@dataclass
class BarClock:
    """Reads a file's time cells, in file order, as UTC instants. Epoch numbers and ISO-8601 times with an
    offset are absolute; naive ISO-8601 times (and dates) are wall-clock times in `zone`.

    DST, deliberately: a local time the clocks skip (e.g. 02:30 on the spring-forward day) is an error,
    since no export in that zone can contain it and it means `--tz` is wrong. A local time that happens
    twice (the fall-back hour) is read as an export writes it: the first, daylight-saving instant, until
    the clock in the file goes back (or repeats) inside that hour; from there on, the standard-time one."""

    zone: tzinfo = UTC
    naive_seen: bool = False  # whether the zone was needed at all, for the summary
    _previous: tuple[datetime, int] | None = None  # the previous row's local time and fold, if ambiguous

    def read(self, cell: str) -> tuple[datetime, bool]:
        """The instant, and whether the cell was a bare date (a daily bar)."""
        previous, self._previous = self._previous, None
        try:
            return epoch_to_utc(float(cell)), False
        except ValueError:
            pass
        try:
            value = datetime.fromisoformat(cell)
        except ValueError:
            raise ValueError(f"time {cell!r} is neither ISO-8601 (2026-11-23 14:30:00) nor epoch s/ms/µs") from None
        date_only = len(cell) == 10
        if value.tzinfo is not None:
            return value.astimezone(UTC), date_only
        self.naive_seen = True
        return self._local(value, previous), date_only

    def _local(self, naive: datetime, previous: tuple[datetime, int] | None) -> datetime:
        first, second = naive.replace(tzinfo=self.zone, fold=0), naive.replace(tzinfo=self.zone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first.astimezone(UTC)
        if first.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != naive:
            raise ValueError(
                f"{naive:%Y-%m-%d %H:%M} does not exist in {self.zone} (the clocks skip it at the "
                "DST change); is --tz right?"
            )
        fold = int(previous is not None and (previous[1] == 1 or naive <= previous[0]))
        self._previous = (naive, fold)
        return (second if fold else first).astimezone(UTC)


# --- layouts ---------------------------------------------------------------------------------------


def parse_columns(spec: str) -> dict[str, str]:
    """`time=Date,close=Close,volume=Vol` -> {role: header name or 1-based column number}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        role, equals, column = (text.strip() for text in item.partition("="))
        role = role.lower()
        if not equals or not column or role not in ROLES or role in mapping:
            raise ValueError(f"--columns: bad item {item!r}; expected {COLUMNS_FORM}")
        mapping[role] = column
    missing = [role for role in ("time", "close") if role not in mapping]
    partial = [role for role in ("open", "high", "low") if role not in mapping]
    if missing:
        raise ValueError(f"--columns needs {' and '.join(missing)}; expected {COLUMNS_FORM}")
    if 0 < len(partial) < 3:
        raise ValueError(
            f"--columns maps some of open, high, low but not {', '.join(partial)}: give all three "
            "(a bar) or none (one tick per row at the close)"
        )
    return mapping


@dataclass(frozen=True)
class Layout:
    """Where each role is in a row (0-based columns; a time split over date and time columns has two),
    whether the file starts with a header, and a name to report."""

    name: str
    header: bool
    positions: Mapping[str, tuple[int, ...]]
    width: int


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def detect_layout(first_row: list[str], columns: Mapping[str, str] | None = None) -> Layout:
    """The layout from the first non-empty row: a header (no cell is a number) or the first bar."""
    cells = [cell.strip() for cell in first_row]
    header = not any(_is_number(cell) for cell in cells)
    if columns:
        return _mapped_layout(cells, header, columns)
    if header:
        return _named_layout(cells)
    in_order = {role: (index,) for index, role in enumerate(ROLES)}
    if len(cells) == len(ROLES):
        return Layout("documented", False, in_order, len(cells))
    if len(cells) == KLINE_WIDTH and cells[0].isdigit():
        return Layout("kline", False, in_order, len(cells))
    raise ValueError(
        f"unknown layout: no header and {len(cells)} fields in the first row; expected "
        f"{DOCUMENTED_HEADER} (6 fields) or a 12-field kline export; map yours with --columns "
        "(column numbers for a file without header, e.g. --columns time=1,close=5)"
    )


def _named_layout(cells: list[str]) -> Layout:
    names = [cell.lower() for cell in cells]
    positions: dict[str, tuple[int, ...]] = {}
    for role, aliases in ROLE_NAMES.items():
        found = next((names.index(alias) for alias in aliases if alias in names), None)
        if found is not None:
            positions[role] = (found,)
    if names[positions.get("time", (0,))[0]] == "date" and "time" in names:  # e.g. Date,Time,Open,...
        positions["time"] = (names.index("date"), names.index("time"))
    missing = [role for role in ("time", *PRICE_ROLES) if role not in positions]
    if missing:
        raise ValueError(
            f"unknown layout: header {','.join(cells)} has no {', '.join(missing)} column; expected "
            f"{DOCUMENTED_HEADER}, Yahoo Finance (Date,Open,High,Low,Close,Adj Close,Volume) or a "
            "kline export (open_time,open,...); map yours with --columns, e.g. time=Date,close=Close"
        )
    name = "Yahoo Finance" if "adj close" in names else "kline" if "open_time" in names else "documented"
    return Layout(name, True, positions, len(cells))


def _mapped_layout(cells: list[str], header: bool, columns: Mapping[str, str]) -> Layout:
    names = [cell.lower() for cell in cells]
    where = f"header {','.join(cells)}" if header else f"a first row of {len(cells)} fields (no header)"

    def index(column: str) -> int:
        if column.isdigit() and 1 <= int(column) <= len(cells):
            return int(column) - 1
        if header and column.lower() in names:
            return names.index(column.lower())
        raise ValueError(f"--columns: no column {column!r} in {where}")

    positions = {role: tuple(index(part.strip()) for part in spec.split("+")) for role, spec in columns.items()}
    return Layout("--columns", header, positions, len(cells))


# --- bars --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One row: when it opened (UTC), its prices (open, high, low, close, or the close alone), its volume."""

    opened: datetime
    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    daily: bool = False

    def path(self) -> tuple[float, ...]:
        """The prices in the order the bar's ticks carry them: open, the extreme the bar most likely reached
        first (the low of an up bar, the high of a down bar), the other extreme, close."""
        if self.open is None or self.high is None or self.low is None:
            return (self.close,)
        extremes = (self.low, self.high) if self.close >= self.open else (self.high, self.low)
        return (self.open, *extremes, self.close)


def parse_bar(cells: list[str], layout: Layout, clock: BarClock) -> Bar:
    """One data row as a Bar, or ValueError saying what is wrong with it."""
    if len(cells) != layout.width:
        raise ValueError(
            f"{len(cells)} fields where the {'header' if layout.header else 'first row'} has {layout.width}"
        )
    values = {role: " ".join(cells[index].strip() for index in indexes) for role, indexes in layout.positions.items()}
    opened, daily = clock.read(values.pop("time"))
    numbers: dict[str, float] = {}
    for role, text in values.items():
        try:
            numbers[role] = float(text)
        except ValueError:
            raise ValueError(f"{role} {text!r} is not a number") from None
        if not math.isfinite(numbers[role]):
            raise ValueError(f"{role} must be a finite number; got {text!r}")
    bar = Bar(opened=opened, daily=daily, **numbers)
    if bar.open is not None and bar.high is not None and bar.low is not None:
        if not 0 < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
            raise ValueError("bar needs 0 < low <= open, close <= high")
    elif bar.close <= 0:
        raise ValueError("close must be > 0")
    if bar.volume is not None and bar.volume < 0:
        raise ValueError("volume must be >= 0")
    return bar


def split_volume(volume: float, parts: int = 4) -> list[float]:
    """A bar's volume over its ticks; whole volumes stay whole and still add up exactly."""
    if not volume.is_integer():
        return [volume / parts] * parts
    share, remainder = divmod(int(volume), parts)
    return [float(share + (i < remainder)) for i in range(parts)]


def bar_ticks(symbol: str, bar: Bar, span: timedelta, shift: timedelta = timedelta(0)) -> list[Tick]:
    """A bar's ticks spread evenly over `span` (the bar's length): a 1-minute bar at :00, :15, :30, :45."""
    prices = bar.path()
    volumes = [None] * len(prices) if bar.volume is None else split_volume(bar.volume, len(prices))
    step = span / len(prices)
    return [
        Tick(symbol=symbol, timestamp=bar.opened + shift + step * i, price=price, volume=volume, source=BAR_SOURCE)
        for i, (price, volume) in enumerate(zip(prices, volumes, strict=True))
    ]


def rows_out_of_order(times: list[datetime]) -> int:
    """How many rows must move for the file to be in time order: all but its longest ordered run
    (not necessarily contiguous). One row out of place counts 1, however far it strayed."""
    tails: list[datetime] = []
    for value in times:
        at = bisect_right(tails, value)
        tails[at : at + 1] = [value]
    return len(times) - len(tails)


def bar_length(bars: list[Bar]) -> timedelta:
    """The file's bar size. Dates are daily bars. Otherwise the commonest gap between consecutive bars,
    the shorter of equally common ones (robust to missing minutes, overnight gaps and a stray row); one
    bar alone is a minute."""
    if bars and bars[0].daily:
        return DAILY_BAR
    gaps = Counter(later.opened - earlier.opened for earlier, later in pairwise(bars))
    return min(gaps, key=lambda gap: (-gaps[gap], gap)) if gaps else DEFAULT_BAR


@dataclass
class BarFile:
    """A checked file: its bars in time order, once per timestamp, and what was repaired or skipped."""

    path: Path
    symbol: str
    layout: Layout
    zone: tzinfo | None  # None: every time in the file was absolute (epoch, or with an offset)
    bars: list[Bar]
    out_of_order: int = 0
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def bar_length(self) -> timedelta:
        return bar_length(self.bars)

    @property
    def tick_count(self) -> int:
        return sum(len(bar.path()) for bar in self.bars)

    @property
    def first(self) -> datetime:
        return self.bars[0].opened

    def ticks(self, shift: timedelta = timedelta(0)) -> Iterator[Tick]:
        """Every bar's ticks, in time order; a bar closer to the next than the usual length is squeezed
        into the gap, so ticks never overtake the next bar."""
        length = self.bar_length
        for bar, following in zip(self.bars, [*self.bars[1:], None], strict=True):
            span = length if following is None else min(length, following.opened - bar.opened)
            yield from bar_ticks(self.symbol, bar, span, shift)

    def summary(self) -> str:
        """What was read and what was repaired, for the user to see before the replay starts."""
        repairs = [
            f"{count} {what if count == 1 else whats}"
            for count, what, whats in (
                (self.out_of_order, "row out of order (sorted)", "rows out of order (sorted)"),
                (self.duplicates, "duplicate timestamp (kept the first)", "duplicate timestamps (kept the first)"),
                (len(self.skipped), "bad row skipped", "bad rows skipped"),
            )
            if count
        ]
        times = f"times in {self.zone}" if self.zone else "absolute times"
        text = (
            f"{self.path} → {self.symbol}: {_many(len(self.bars), 'bar')} of {_length_text(self.bar_length)} "
            f"({self.layout.name} layout, {times}) → {_many(self.tick_count, 'tick')}"
        )
        return text + (f"; {', '.join(repairs)}" if repairs else "")


def _many(count: int, thing: str) -> str:
    """1 bar, 2 bars, 1,000 ticks."""
    return f"{count:,} {thing}{'' if count == 1 else 's'}"


def _length_text(length: timedelta) -> str:
    seconds = int(length.total_seconds())
    for unit, size in (("day", 86_400), ("h", 3_600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def read_bars(
    path: str | Path,
    symbol: str,
    *,
    zone: tzinfo = UTC,
    columns: Mapping[str, str] | None = None,
    skip_bad_rows: bool = False,
) -> BarFile:
    """Reads and checks a whole file. A row that cannot be read raises BarFileError naming file and line,
    unless `skip_bad_rows`, when it is skipped and listed. Raises OSError if the file cannot be opened."""
    path = Path(path)
    symbol = normalise_symbol(symbol)
    clock = BarClock(zone)
    bars: list[Bar] = []
    skipped: list[str] = []
    layout: Layout | None = None
    with path.open(newline="", encoding="utf-8-sig") as file:
        rows = csv.reader(file)
        while (row := _next_row(rows, path, skipped if skip_bad_rows else None)) is not None:
            if not any(cell.strip() for cell in row):
                continue
            if layout is None:
                try:
                    layout = detect_layout(row, columns)
                except ValueError as error:
                    raise BarFileError(f"{path}:{rows.line_num}: {error}") from None
                if layout.header:
                    continue
            try:
                bars.append(parse_bar(row, layout, clock))
            except (ValueError, OverflowError) as error:  # OverflowError: a time far beyond what dates hold
                problem = f"{path}:{rows.line_num}: {error}"
                if not skip_bad_rows:
                    raise BarFileError(
                        f"{problem} (nothing was published; fix the row or pass --skip-bad-rows)"
                    ) from None
                skipped.append(problem)
    if layout is None or not bars:
        raise BarFileError(
            f"{path}: no bars to replay" + (f" ({_many(len(skipped), 'bad row')} skipped)" if skipped else "")
        )
    out_of_order = rows_out_of_order([bar.opened for bar in bars])
    ordered = sorted(bars, key=lambda bar: bar.opened)  # stable: of equal times, the file's first comes first
    unique = ordered[:1] + [bar for before, bar in pairwise(ordered) if bar.opened != before.opened]
    return BarFile(
        path, symbol, layout, zone if clock.naive_seen else None, unique, out_of_order, len(bars) - len(unique), skipped
    )


def _next_row(rows: _csv.Reader, path: Path, skipped: list[str] | None) -> list[str] | None:
    """The next row of a CSV reader, None at the end. A line the csv module cannot read (e.g. a field over its
    size limit) is a bad row: listed in `skipped`, or (None given) a BarFileError naming file and line."""
    while True:
        try:
            return list(next(rows))
        except StopIteration:
            return None
        except csv.Error as error:
            problem = f"{path}:{rows.line_num}: unreadable CSV ({error})"
            if skipped is None:
                raise BarFileError(f"{problem} (nothing was published; fix the row or pass --skip-bad-rows)") from None
            skipped.append(problem)


def merge_streams(*streams: Iterable[Tick]) -> Iterator[Tick]:
    """Several time-ordered streams (files, symbols) as one time-ordered stream; ties keep stream order."""
    return heapq.merge(*streams, key=lambda tick: tick.timestamp)


def replay(files: Iterable[BarFile], shift: timedelta = timedelta(0)) -> Iterator[Tick]:
    """The ticks of several files merged by time, all moved by `shift`."""
    return merge_streams(*(bar_file.ticks(shift) for bar_file in files))
