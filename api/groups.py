"""Symbol groups (`/v1/groups`): named sets of symbols and patterns that mutes and thresholds can target as
`group:NAME`. Reading needs any token; changing needs an admin token, audited like every control."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api.auth import Admin, Reader
from api.deps import services
from api.errors import Problem, problem_responses
from api.models import GroupList, GroupOut, GroupRequest
from api.views import invalid_as_problem
from pipeline.context import Context
from pipeline.groups import Group

router = APIRouter(prefix="/v1", tags=["groups"], responses=problem_responses(401, 422, 503))
Svc = Annotated[Context, Depends(services)]
GroupName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", examples=["semis"])]


def _existing(svc: Context, name: str) -> Group:
    group = svc.controls.group(name)
    if group is None:
        raise Problem(404, "unknown-group", f"there is no group {name}")
    return group


@router.get("/groups", response_model=GroupList, summary="Every group, by name")
def list_groups(_: Reader, svc: Svc) -> GroupList:
    found = svc.controls.groups()
    return GroupList(items=[GroupOut.of(found[name]) for name in sorted(found)])


@router.get("/groups/{name}", response_model=GroupOut, responses=problem_responses(404), summary="One group")
def get_group(_: Reader, svc: Svc, name: GroupName) -> GroupOut:
    return GroupOut.of(_existing(svc, name))


@router.put(
    "/groups/{name}",
    response_model=GroupOut,
    responses=problem_responses(403),
    summary="Make a group, or replace its members (symbols and glob patterns such as *-USD)",
)
def put_group(principal: Admin, svc: Svc, name: GroupName, request: GroupRequest) -> GroupOut:
    old = svc.controls.group(name)
    before = set(old.members) if old else set()
    with invalid_as_problem("body.members"):
        wanted = {m.strip().upper() for m in request.members}
        add, remove = sorted(wanted - before), sorted(before - wanted)
        if add or remove:
            svc.controls.change_group(name, principal.actor, add=add, remove=remove)
    return GroupOut.of(_existing(svc, name))


@router.delete(
    "/groups/{name}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(403, 404),
    summary="Delete a group, with its mute, recurring windows and rules",
)
def delete_group(principal: Admin, svc: Svc, name: GroupName) -> Response:
    _existing(svc, name)
    svc.controls.delete_group(name, principal.actor)
    return Response(status_code=204)
