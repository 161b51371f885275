"""Opaque page cursors, one format for every paged list of the API (prices, anomalies, webhook deliveries).

A cursor is the position after the last item handed out (e.g. Elasticsearch sort values, a log score),
as URL-safe base64 of JSON: clients pass it back untouched, and anything else is refused with one message.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson

INVALID = "cursor is not one this API handed out; start again without it"


def encode(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode(cursor: str | None) -> list[Any] | None:
    """The position in `cursor` (None for the first page); ValueError when it is not one `encode` made."""
    if not cursor:
        return None
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise ValueError(INVALID) from None
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, str) or (isinstance(v, int | float) and math.isfinite(v)) for v in values)
    ):
        raise ValueError(INVALID)
    return values
