"""Thresholds, mutes (and recurring windows) and the audit log: views over pipeline.controls (the same
validation and audit as the bot). Thresholds and mutes take a symbol or a group (`group:NAME`).

Reading needs any token; changing needs an admin token, and the change is audited as the token's name via
"api".
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Query, Response

from api.auth import Admin, Reader
from api.deps import services
from api.errors import Problem, problem_responses
from api.models import (
    AuditLog,
    ChangeOut,
    MuteList,
    MuteOut,
    MuteRequest,
    RuleOut,
    SuggestionOut,
    Suggestions,
    ThresholdChange,
    Thresholds,
    WindowOut,
    WindowRequest,
)
from api.views import SymbolPath, TargetPath, invalid_as_problem, target_param
from pipeline import history
from pipeline.context import Context
from pipeline.detect import tuning
from pipeline.durations import parse_duration, parse_seconds
from pipeline.groups import is_group
from pipeline.mutes import MuteAsk, check_window_length, mute_length, recurrence, time_zone
from pipeline.rule_words import RuleChange
from pipeline.schema import RULES, RuleName

router = APIRouter(prefix="/v1", tags=["controls"], responses=problem_responses(401, 422, 503))
ADMIN_ONLY = problem_responses(403)
Svc = Annotated[Context, Depends(services)]
WindowId = Annotated[str, Path(pattern=r"^win_[0-9a-f]{12}$", examples=["win_0123456789ab"])]


def _known(svc: Context, target: str, field: str = "path.symbol") -> str:
    """A symbol with stored ticks (404 with the closest ones otherwise: a typo must not mute nothing), or a
    group that exists (404 otherwise)."""
    target = target_param(target, field)
    if is_group(target):
        if svc.controls.group(target) is None:
            raise Problem(404, "unknown-group", f"there is no group {target}; PUT /v1/groups/NAME makes one")
    else:
        history.require_symbol(svc.es, svc.indices, target)
    return target


def _thresholds(svc: Context, symbol: str) -> Thresholds:
    rules = svc.controls.rules(symbol)
    return Thresholds(symbol=symbol, rules={name: RuleOut.of(view) for name, view in rules.items()})


@router.get(
    "/thresholds/{symbol:path}/suggestion",
    response_model=Suggestions,
    responses=problem_responses(404),
    summary="The thresholds the reasons alerts were acknowledged with suggest, each replayed over 7 days",
)
def get_suggestion(_: Reader, svc: Svc, symbol: SymbolPath) -> Suggestions:
    """Per rule with alerts acknowledged with a reason in the last 30 days: the threshold that keeps those
    marked a real move, news or expected and drops those marked too sensitive or bad data. PUT
    /v1/thresholds/{symbol} applies one."""
    symbol = _known(svc, symbol)
    found = tuning.suggest(svc.es, svc.indices, svc.controls, symbol)
    return Suggestions(symbol=symbol, items=[SuggestionOut.of(s) for s in found])


@router.get(
    "/thresholds/{symbol:path}",
    response_model=Thresholds,
    responses=problem_responses(404),
    summary="The rules that apply to a symbol or group now, and where each comes from",
)
def get_thresholds(_: Reader, svc: Svc, symbol: TargetPath) -> Thresholds:
    return _thresholds(svc, _known(svc, symbol))


def _seconds(field: str, text: str | None, *, bare_unit: str = "s") -> float | None:
    with invalid_as_problem(f"body.{field}"):
        return None if text is None else parse_seconds(text, bare_unit=bare_unit)


def _rule_parameters(svc: Context, symbol: str, change: ThresholdChange) -> RuleChange:
    """The change as `Controls.set_rule` takes it, checked by Controls (its limits, the bot's too). Its message
    does not say which parameter it refuses, so they are added one at a time: the first one that makes
    Controls refuse is the field the 422 names."""
    # A bare number counts in minutes for windows and cooldowns, as in Slack and the CLI (`drop 3% 10`).
    window = _seconds("window", change.window, bare_unit="m")
    cooldown = _seconds("cooldown", change.cooldown, bare_unit="m")
    fields: list[tuple[str, str, float | int | None]] = [
        ("threshold", "threshold_pct", change.threshold),
        ("window", "window_seconds", None if window is None else round(window)),
        ("cooldown", "cooldown_seconds", None if cooldown is None else round(cooldown)),
        ("confirm_ticks", "confirm_ticks", change.confirm_ticks),
        ("confirm_for", "confirm_seconds", _seconds("confirm_for", change.confirm_for)),
    ]
    given: dict[str, float | int] = {}  # RuleChange, grown one field at a time
    for field, parameter, value in fields:
        if value is not None:
            given[parameter] = value
            with invalid_as_problem(f"body.{field}"):
                svc.controls.candidate(symbol, change.rule, **cast(RuleChange, given))
    if not given:
        with invalid_as_problem("body"):
            raise ValueError("give at least one of threshold, window, cooldown, confirm_ticks, confirm_for")
    return cast(RuleChange, given)


@router.put(
    "/thresholds/{symbol:path}",
    response_model=Thresholds,
    responses={**ADMIN_ONLY, **problem_responses(404)},
    summary="Set a rule's threshold, window, cooldown or confirmation for a symbol or group (audited)",
)
def put_thresholds(principal: Admin, svc: Svc, symbol: TargetPath, change: ThresholdChange) -> Thresholds:
    """Parameters left out keep their current values (a cooldown that followed the window keeps following it).
    A threshold of 0 turns the rule off; DELETE goes back to the defaults."""
    symbol = _known(svc, symbol)
    svc.controls.set_rule(symbol, change.rule, principal.actor, **_rule_parameters(svc, symbol, change))
    return _thresholds(svc, symbol)


@router.delete(
    "/thresholds/{symbol:path}",
    response_model=Thresholds,
    responses=ADMIN_ONLY,
    summary="Drop a symbol's or group's own rules (one rule, or all): its group's or the defaults apply",
)
def delete_thresholds(
    principal: Admin,
    svc: Svc,
    symbol: TargetPath,
    rule: Annotated[RuleName | None, Query(description="default: every rule")] = None,
) -> Thresholds:
    symbol = target_param(symbol)
    for name in [rule] if rule else RULES:
        if svc.controls.rules(symbol)[name].overridden:
            svc.controls.reset_rule(symbol, name, principal.actor)
    return _thresholds(svc, symbol)


@router.get("/mutes", response_model=MuteList, summary="Mutes in force, and recurring windows")
def list_mutes(_: Reader, svc: Svc) -> MuteList:
    return MuteList(
        items=[MuteOut.of(mute) for mute in svc.controls.mutes()],
        windows=[WindowOut.of(window) for window in svc.controls.windows()],
    )


@router.post(
    "/mutes",
    response_model=MuteOut,
    status_code=201,
    responses={**ADMIN_ONLY, **problem_responses(404)},
    summary="Mute a symbol's or group's notifications (its anomalies are still stored, flagged muted)",
)
def create_mute(principal: Admin, svc: Svc, request: MuteRequest) -> MuteOut:
    """Ends after `duration` (1h when nothing else bounds it), at `until`, when its open episodes resolve
    (`until_resolved`), or when a tick crosses `above` / `below`; `unless` lets big moves through."""
    symbol = _known(svc, request.symbol, "body.symbol")
    with invalid_as_problem("body.duration"):
        duration = None if request.ends_otherwise() and request.duration is None else mute_length(request.duration)
    ask = MuteAsk(
        duration=duration,
        until_resolved=request.until_resolved,
        above=request.above,
        below=request.below,
        unless=request.unless,
        reason=request.reason,
    )
    with invalid_as_problem(f"body.{request.bound_by()}"):  # what bounds the mute
        svc.controls.mute_as(symbol, principal.actor, ask, until=request.until)
    mute = svc.controls.mute_of(symbol)
    assert mute is not None  # just written
    return MuteOut.of(mute)


@router.post(
    "/mutes/windows",
    response_model=WindowOut,
    status_code=201,
    responses={**ADMIN_ONLY, **problem_responses(404)},
    summary="Mute a symbol or group on a schedule (an RRULE and a length: a recurring maintenance window)",
)
def create_window(principal: Admin, svc: Svc, request: WindowRequest) -> WindowOut:
    target = _known(svc, request.target, "body.target")
    with invalid_as_problem("body.duration"):
        length = parse_duration(request.duration)
        check_window_length(length)
    with invalid_as_problem("body.timezone"):
        time_zone(request.timezone)
    with invalid_as_problem("body.rrule"):
        every = recurrence(request.rrule, length, request.timezone)
    change = svc.controls.mute(target, principal.actor, every=every, reason=request.reason, unless=request.unless)
    window = next(w for w in svc.controls.windows(target) if w.id == (change.new or {}).get("id"))
    return WindowOut.of(window)


@router.delete(
    "/mutes/windows/{window_id}",
    status_code=204,
    response_class=Response,
    responses={**ADMIN_ONLY, **problem_responses(404)},
    summary="Remove a recurring mute",
)
def delete_window(
    principal: Admin, svc: Svc, window_id: Annotated[str, Path(pattern=r"^win_[0-9a-f]{12}$")]
) -> Response:
    if svc.controls.remove_window(window_id, principal.actor) is None:
        raise Problem(404, "unknown-window", f"there is no window {window_id}")
    return Response(status_code=204)


@router.delete(
    "/mutes/{symbol:path}",
    status_code=204,
    response_class=Response,
    responses={**ADMIN_ONLY, **problem_responses(404)},
    summary="Unmute a symbol or group (its recurring windows are removed too)",
)
def delete_mute(principal: Admin, svc: Svc, symbol: TargetPath) -> Response:
    if not svc.controls.unmute(target_param(symbol), principal.actor):
        raise Problem(404, "not-muted", f"{target_param(symbol)} is not muted")
    return Response(status_code=204)


@router.get("/audit", response_model=AuditLog, summary="Changes to thresholds and mutes, newest first")
def audit(
    _: Reader,
    svc: Svc,
    symbol: Annotated[str | None, Query(description="only changes to this symbol")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="changes at most")] = 50,
) -> AuditLog:
    if symbol is not None:
        symbol = target_param(symbol, "query.symbol")
    return AuditLog(items=[ChangeOut.of(change) for change in svc.controls.audit_log(symbol=symbol, limit=limit)])
