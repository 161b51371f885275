"""Helpers every router uses: turning a service's ValueError into a 422 that names the field, symbols."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Path

from api.errors import Problem
from pipeline.groups import normalise_target
from pipeline.schema import normalise_symbol

# As the tick contract has it, in either case (normalised to upper case). Routes take it as {symbol:path}, so
# a pair such as EUR/USD is written as it is (or as EUR%2FUSD).
SymbolPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9._:/\-]{1,20}$", description="e.g. TSLA, BRK.B, BTC-USD, EUR/USD", examples=["TSLA"])
]
TargetPath = Annotated[
    str,
    Path(
        pattern=r"^([A-Za-z0-9._:/\-]{1,20}|group:[a-z0-9][a-z0-9_-]{0,31})$",
        description="a symbol, or a group as group:NAME",
        examples=["TSLA", "group:crypto"],
    ),
]


@contextmanager
def invalid_as_problem(field: str | None = None) -> Iterator[None]:
    """A ValueError a service raises on bad input becomes a 422 problem (the service's message, the field)."""
    try:
        yield
    except ValueError as error:
        errors = [{"field": field, "message": str(error)}] if field else None
        raise Problem(422, "validation", f"{field}: {error}" if field else str(error), errors=errors) from None


def symbol_param(symbol: str) -> str:
    with invalid_as_problem("path.symbol"):
        return normalise_symbol(symbol)


def target_param(target: str, field: str = "path.symbol") -> str:
    with invalid_as_problem(field):
        return normalise_target(target)


def next_link(path: str, cursor: str | None, **query: object) -> str | None:
    """The next page's path and query (None when there is no next page)."""
    if cursor is None:
        return None
    params = {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in query.items()
        if value is not None
    }
    return f"{path}?{urlencode({**params, 'cursor': cursor})}"
