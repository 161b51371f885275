"""Personal watches (`/v1/users/{user}/watches`): a person's own rules, alerted to them alone by Slack DM, and their
quiet hours. The same service and checks as `/watch` in Slack (pipeline.watches). A watch is about a person, so
reading and changing both need an admin token (an integration acting for its users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.auth import Admin
from api.deps import services
from api.errors import Problem, problem_responses
from api.models import QuietHoursRequest, WatchList, WatchOut, WatchRequest
from api.views import invalid_as_problem, target_param
from pipeline.context import Context
from pipeline.schema import RuleName
from pipeline.watches import QuietHours, Watches, new_watch

router = APIRouter(prefix="/v1/users/{user}", tags=["watches"], responses=problem_responses(401, 403, 422, 503))
Svc = Annotated[Context, Depends(services)]
UserPath = Annotated[str, Path(pattern=r"^[UW][A-Z0-9]{2,20}$", examples=["U0123ABCD"], description="a Slack user id")]


def _listing(svc: Context, user: str) -> WatchList:
    watches = Watches(svc.redis, svc.settings)
    quiet = watches.quiet_of(user)
    return WatchList(
        items=[WatchOut.of(w) for w in watches.of_user(user)],
        quiet_hours=quiet.says() if quiet else None,
        limit=svc.settings.max_watches_per_user,
    )


@router.get("/watches", response_model=WatchList, summary="A person's watches and quiet hours")
def list_watches(_: Admin, svc: Svc, user: UserPath) -> WatchList:
    return _listing(svc, user)


@router.put(
    "/watches",
    response_model=WatchOut,
    summary="Set a watch (replacing the person's watch of that rule on that target); refused past the limit",
)
def put_watch(_: Admin, svc: Svc, user: UserPath, request: WatchRequest) -> WatchOut:
    with invalid_as_problem("body"):
        asked = new_watch(
            user,
            request.target,
            request.rule,
            request.threshold_pct,
            request.window_seconds or svc.settings.window_seconds,
        )
        made = Watches(svc.redis, svc.settings).add(asked)[0]
    return WatchOut.of(made)


@router.delete(
    "/watches",
    status_code=204,
    response_class=Response,
    responses=problem_responses(404),
    summary="Stop a person's watch on a target (one rule, or all)",
)
def delete_watch(
    _: Admin,
    svc: Svc,
    user: UserPath,
    target: Annotated[str, Query(max_length=40, examples=["TSLA"])],
    rule: Annotated[RuleName | None, Query()] = None,
) -> Response:
    removed = Watches(svc.redis, svc.settings).remove(user, target_param(target, "query.target"), rule)
    if not removed:
        raise Problem(404, "unknown-watch", f"{user} does not watch {target}" + (f" {rule}" if rule else ""))
    return Response(status_code=204)


@router.put("/quiet-hours", response_model=WatchList, summary="Set or clear a person's quiet hours")
def put_quiet_hours(_: Admin, svc: Svc, user: UserPath, request: QuietHoursRequest) -> WatchList:
    with invalid_as_problem("body.quiet_hours"):
        quiet = QuietHours.parse(request.quiet_hours or "off")
    Watches(svc.redis, svc.settings).set_quiet(user, quiet)
    return _listing(svc, user)
