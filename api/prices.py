"""Symbols, raw ticks and OHLCV bars: views over pipeline.history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.auth import Reader
from api.deps import services
from api.errors import problem_responses
from api.models import MarketOut, Ohlc, SymbolList, SymbolOut, TickOut, TickPage
from api.views import SymbolPath, invalid_as_problem, next_link, symbol_param
from pipeline import calendars, history
from pipeline.context import Context
from pipeline.schema import to_utc

router = APIRouter(prefix="/v1", tags=["prices"], responses=problem_responses(401, 422, 503))

DEFAULT_TICKS_SPAN = timedelta(hours=1)
MAX_SPAN = timedelta(days=31)
# Default range of bars ending at the symbol's last tick: a day of minutes, a year of days.
DEFAULT_OHLC_SPAN = {
    "1m": timedelta(days=1),
    "5m": timedelta(days=1),
    "15m": timedelta(days=7),
    "1h": timedelta(days=30),
    "1d": timedelta(days=365),
}
Interval = Literal["1m", "5m", "15m", "1h", "1d"]


@router.get("/symbols", response_model=SymbolList, summary="Known symbols with their last price and tick time")
def symbols(
    _: Reader,
    svc: Annotated[Context, Depends(services)],
    limit: Annotated[int, Query(ge=1, le=history.SYMBOLS_LIMIT, description="at most this many, A to Z")] = 1000,
) -> SymbolList:
    found, now = calendars.for_patterns(svc.settings.calendars), datetime.now(UTC)
    return SymbolList(
        items=[
            SymbolOut(
                symbol=info.symbol,
                last_price=info.last_price,
                last_timestamp=info.last_timestamp,
                market=MarketOut.of(found.session_of(info.symbol, now)),
            )
            for info in history.known_symbols(svc.es, svc.indices, limit=limit)
        ]
    )


def _range(
    svc: Context,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    default_span: timedelta,
    *,
    after_last: timedelta = timedelta(0),
) -> tuple[datetime, datetime]:
    """[start, end] with defaults: a span ending at the symbol's last tick (404 for an unknown symbol); with
    only a start, the span from there; with only an end, the span before it."""
    last = history.require_symbol(svc.es, svc.indices, symbol)
    start, end = (to_utc(value) if value else None for value in (start, end))
    if end is None:
        end = start + default_span if start else last.timestamp + after_last
    if start is None:
        start = end - default_span
    if end <= start:
        with invalid_as_problem("query.end"):
            raise ValueError("the end must be after the start")
    if end - start > MAX_SPAN:
        with invalid_as_problem("query.start"):
            raise ValueError(f"at most {MAX_SPAN.days} days per request; page through smaller ranges")
    return start, end


# Before the ticks route: its {symbol:path} would take "EUR/USD/ohlc" whole.
@router.get(
    "/prices/{symbol:path}/ohlc",
    response_model=Ohlc,
    responses=problem_responses(404),
    summary="OHLCV bars of a symbol",
)
def ohlc(
    _: Reader,
    svc: Annotated[Context, Depends(services)],
    symbol: SymbolPath,
    interval: Annotated[Interval, Query(description="bar length")] = "1m",
    start: Annotated[datetime | None, Query(description="default: a span before end that suits the interval")] = None,
    end: Annotated[
        datetime | None, Query(description="default: a span after start, or just after the symbol's last tick")
    ] = None,
) -> Ohlc:
    symbol = symbol_param(symbol)
    # A default end just past the last tick, so the bar holding it is complete in the answer.
    start, end = _range(svc, symbol, start, end, DEFAULT_OHLC_SPAN[interval], after_last=timedelta(milliseconds=1))
    with invalid_as_problem("query.interval"):
        bars = history.ohlc(svc.es, svc.indices, symbol, start, end, interval)
    return Ohlc(symbol=symbol, interval=interval, start=start, end=end, bars=bars)


@router.get(
    "/prices/{symbol:path}",
    response_model=TickPage,
    responses=problem_responses(404),
    summary="Raw ticks of a symbol, oldest first, a page at a time",
)
def prices(
    _: Reader,
    request: Request,
    svc: Annotated[Context, Depends(services)],
    symbol: SymbolPath,
    start: Annotated[datetime | None, Query(description="default: an hour before end")] = None,
    end: Annotated[
        datetime | None, Query(description="default: an hour after start, or the symbol's last tick")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE, description="ticks per page")] = 100,
    cursor: Annotated[str | None, Query(description="from the previous page's next_cursor")] = None,
) -> TickPage:
    symbol = symbol_param(symbol)
    start, end = _range(svc, symbol, start, end, DEFAULT_TICKS_SPAN)
    with invalid_as_problem("query.cursor"):
        page = history.ticks_page(svc.es, svc.indices, symbol, start, end, limit=limit, cursor=cursor)
    return TickPage(
        symbol=symbol,
        start=start,
        end=end,
        items=[TickOut.of(row) for row in page.items],
        next_cursor=page.next_cursor,
        next=next_link(request.url.path, page.next_cursor, start=start, end=end, limit=limit),
    )
