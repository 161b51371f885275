"""Windows and durations as people type them: `90s`, `15m`, `1h`, `2h30m`, `1d`, `1w`.

The one parser the bot, the API, the CLI and scenario files share, so `/price TSLA 2h30m`,
`?window=2h30m` and `--duration 2h30m` mean the same thing everywhere.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhdw])+\s*")
EXAMPLES = "e.g. 90s, 15m, 1h, 2h30m, 1d"
MAX_SECONDS = 100 * 365 * 86_400  # longer than anything Tickwatch measures; beyond it dates overflow


def parse_seconds(text: str | float, *, bare_unit: str = "s") -> float:
    """Seconds in `text`; a bare number counts in `bare_unit`. Raises ValueError saying what is accepted."""
    if isinstance(text, bool):
        raise ValueError(f"a duration is a number with a unit ({EXAMPLES}); got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text) * UNIT_SECONDS[bare_unit]
    else:
        value = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", value):
            seconds = float(value) * UNIT_SECONDS[bare_unit]
        elif _WHOLE.fullmatch(value):
            seconds = sum(float(amount) * UNIT_SECONDS[unit] for amount, unit in _PART.findall(value))
        else:
            raise ValueError(f"a duration is a number with a unit ({EXAMPLES}); got {text!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and not negative; got {text!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"a duration of at most 100 years, please ({EXAMPLES}); got {text!r}")
    return seconds


def parse_duration(text: str | float, *, bare_unit: str = "s") -> timedelta:
    """`parse_seconds` as a timedelta."""
    return timedelta(seconds=parse_seconds(text, bare_unit=bare_unit))


def parse_window(text: str, *, maximum: timedelta = timedelta(days=31)) -> timedelta:
    """A look-back window for reads: positive and bounded, so no query is ever unbounded."""
    window = parse_duration(text)
    if window <= timedelta(0):
        raise ValueError(f"a window must be longer than zero ({EXAMPLES})")
    if window > maximum:
        raise ValueError(f"a window can be at most {format_duration(maximum.total_seconds())}; got {text!r}")
    return window


def format_duration(seconds: float) -> str:
    """Compact and exact where it can be: 90 -> '1m30s', 9000 -> '2h30m', 86400 -> '1d', 45 -> '45s'."""
    remaining = round(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, remaining = divmod(remaining, UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
