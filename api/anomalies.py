"""Anomalies: search with filters and cursors, and one anomaly with its human state and Slack link."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import Reader
from api.deps import services
from api.errors import Problem, problem_responses
from api.models import AnomalyOut, AnomalyPage
from api.views import invalid_as_problem, next_link
from pipeline import history
from pipeline.context import Context
from pipeline.schema import Anomaly, AnomalyStatus, RuleName, normalise_symbol, to_utc

router = APIRouter(prefix="/v1", tags=["anomalies"], responses=problem_responses(401, 422, 503))


def _out(anomaly: Anomaly, svc: Context) -> AnomalyOut:
    link = anomaly.slack.permalink(svc.settings.slack_workspace_url) if anomaly.slack else None
    return AnomalyOut(**anomaly.model_dump(), slack_url=link)


@router.get("/anomalies", response_model=AnomalyPage, summary="Anomalies, newest first, filtered")
def anomalies(
    _: Reader,
    request: Request,
    svc: Annotated[Context, Depends(services)],
    symbol: Annotated[str | None, Query(description="only this symbol", examples=["TSLA"])] = None,
    rule: Annotated[RuleName | None, Query(description="only anomalies of this rule")] = None,
    status: Annotated[AnomalyStatus | None, Query(description="only anomalies in this state")] = None,
    muted: Annotated[
        bool | None,
        Query(
            description="true: only those found while the symbol was muted (not notified); false: only notified ones"
        ),
    ] = None,
    start: Annotated[datetime | None, Query(description="event time from (ISO-8601)")] = None,
    end: Annotated[datetime | None, Query(description="event time until (ISO-8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="anomalies per page")] = 20,
    cursor: Annotated[str | None, Query(description="from the previous page's next_cursor")] = None,
) -> AnomalyPage:
    """Every anomaly stored, newest first, a page at a time; filters combine (all must match)."""
    if symbol is not None:
        with invalid_as_problem("query.symbol"):
            symbol = normalise_symbol(symbol)
    start, end = (to_utc(value) if value else None for value in (start, end))
    with invalid_as_problem("query.cursor"):
        page = history.anomalies_page(
            svc.es,
            svc.indices,
            symbol=symbol,
            rule=rule,
            status=status,
            muted=muted,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
        )
    link = next_link(
        request.url.path,
        page.next_cursor,
        symbol=symbol,
        rule=rule,
        status=status,
        muted=None if muted is None else str(muted).lower(),
        start=start,
        end=end,
        limit=limit,
    )
    return AnomalyPage(items=[_out(anomaly, svc) for anomaly in page.items], next_cursor=page.next_cursor, next=link)


@router.get(
    "/anomalies/{anomaly_id}",
    response_model=AnomalyOut,
    responses=problem_responses(404),
    summary="One anomaly: its figures, status, who acknowledged it and its Slack message",
)
def anomaly(
    _: Reader,
    svc: Annotated[Context, Depends(services)],
    anomaly_id: Annotated[str, Path(description="an anomaly's id, as listed or in an alert event")],
) -> AnomalyOut:
    found = history.get_anomaly(svc.es, svc.indices, anomaly_id)
    if found is None:
        raise Problem(404, "unknown-anomaly", f"no anomaly with id {anomaly_id!r}")
    return _out(found, svc)
