"""`tickwatch digest` in a narrow terminal: columns give way, symbols and prices never lose a character."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from rich.console import Console

from pipeline.digest.summary import Digest, Health, RuleCount, SymbolDay
from tickwatch.commands.digest import show

AT = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
LONG = "BTC-USDT-PERP"


def day() -> Digest:
    movers = [
        SymbolDay(
            symbol=symbol,
            open=59968.12,
            close=61234.56,
            low=58000.01,
            high=62000.99,
            first_at=AT,
            last_at=AT,
            ticks=12345,
            late=0,
            change_pct=2.11,
            drawdown_pct=-3.28,
            rise_pct=3.39,
        )
        for symbol in (LONG, "TSLA")
    ]
    count = RuleCount(symbol=LONG, rule="drop", total=3, acknowledged=1, open=1, resolved=1, muted=0)
    health = Health(
        late_ticks=0,
        late_by_symbol=[],
        suspect_ticks=0,
        suspect_by_symbol=[],
        dead_letters=0,
        silent=[],
        silent_total=0,
        silence_minutes=0,
    )
    return Digest(
        day=date(2026, 11, 20),
        tz="UTC",
        start=AT,
        end=AT,
        generated_at=AT,
        symbols=2,
        ticks=24690,
        truncated=False,
        movers=movers,
        drawdowns=movers,
        rises=movers,
        anomalies=[count],
        anomaly_pairs=1,
        anomalies_total=3,
        acknowledged_total=1,
        mute_changes=[],
        muted_at_end=[],
        health=health,
        paths={},
        timings_ms={},
    )


def shown(width: int) -> str:
    out = io.StringIO()
    show(day(), Console(file=out, width=width))
    return out.getvalue()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_symbols_and_prices_are_never_cut(width: int):
    text = shown(width)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    movers = text[text.index("Top movers") : text.index("biggest drawdowns")]
    assert movers.count(LONG) == 1 and "61,234.56" in movers and "+2.11%" in movers
    assert LONG in text[text.index("Anomalies") :]


def test_a_wide_terminal_shows_every_column_and_a_narrow_one_leaves_out_the_least_telling():
    assert "62,000.99" in shown(200) and "12,345" in shown(200)
    assert "12,345" not in shown(80)  # ticks go first
    assert "59,968.12" in shown(80)  # the open stays while there is room
