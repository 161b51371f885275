"""Thresholds, mutes and the audit log: views over pipeline.controls (the same validation and audit as the bot).

Reading needs any token; changing needs an admin token, and the change is audited as the token's name via
"api".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.auth import Admin, Reader
from api.deps import Services, services
from api.errors import Problem, problem_responses
from api.models import AuditLog, ChangeOut, MuteList, MuteOut, MuteRequest, RuleOut, ThresholdChange, Thresholds
from api.views import SymbolPath, invalid_as_problem, symbol_param
from pipeline import history
from pipeline.controls import RULES
from pipeline.durations import parse_duration, parse_seconds
from pipeline.schema import RuleName

router = APIRouter(prefix="/v1", tags=["controls"], responses=problem_responses(401, 422))
ADMIN_ONLY = problem_responses(403)
Svc = Annotated[Services, Depends(services)]


def _known(svc: Services, symbol: str) -> str:
    """A symbol with stored ticks (404 with the closest ones otherwise): a typo must not mute nothing."""
    symbol = symbol_param(symbol)
    history.require_symbol(svc.es, svc.indices, symbol)
    return symbol


def _thresholds(svc: Services, symbol: str) -> Thresholds:
    rules = svc.controls.rules(symbol)
    return Thresholds(symbol=symbol, rules={name: RuleOut.of(view) for name, view in rules.items()})


@router.get("/thresholds/{symbol}", response_model=Thresholds, responses=problem_responses(404),
            summary="The rules that apply to a symbol now (defaults or its overrides)")
def get_thresholds(_: Reader, svc: Svc, symbol: SymbolPath) -> Thresholds:
    return _thresholds(svc, _known(svc, symbol))


@router.put("/thresholds/{symbol}", response_model=Thresholds, responses={**ADMIN_ONLY, **problem_responses(404)},
            summary="Set a rule's threshold, window or cooldown for a symbol (audited)")
def put_thresholds(principal: Admin, svc: Svc, symbol: SymbolPath, change: ThresholdChange) -> Thresholds:
    symbol = _known(svc, symbol)
    with invalid_as_problem("body.window"):
        window = None if change.window is None else round(parse_seconds(change.window))
    with invalid_as_problem("body.cooldown"):
        cooldown = None if change.cooldown is None else round(parse_seconds(change.cooldown))
    with invalid_as_problem():
        svc.controls.set_rule(symbol, change.rule, principal.actor, threshold_pct=change.threshold,
                              window_seconds=window, cooldown_seconds=cooldown)
    return _thresholds(svc, symbol)


@router.delete("/thresholds/{symbol}", response_model=Thresholds, responses=ADMIN_ONLY,
               summary="Back to the default rules for a symbol (one rule, or all)")
def delete_thresholds(principal: Admin, svc: Svc, symbol: SymbolPath,
                      rule: Annotated[RuleName | None, Query(description="default: every rule")] = None) -> Thresholds:
    symbol = symbol_param(symbol)
    for name in [rule] if rule else RULES:
        if svc.controls.rules(symbol)[name].overridden:
            svc.controls.reset_rule(symbol, name, principal.actor)
    return _thresholds(svc, symbol)


@router.get("/mutes", response_model=MuteList, summary="Mutes in force")
def list_mutes(_: Reader, svc: Svc) -> MuteList:
    return MuteList(items=[MuteOut.of(mute) for mute in svc.controls.mutes()])


@router.post("/mutes", response_model=MuteOut, status_code=201, responses={**ADMIN_ONLY, **problem_responses(404)},
             summary="Mute a symbol's notifications (its anomalies are still stored, flagged muted)")
def create_mute(principal: Admin, svc: Svc, request: MuteRequest) -> MuteOut:
    symbol = _known(svc, request.symbol)
    with invalid_as_problem("body.duration"):
        duration = None if request.duration is None else parse_duration(request.duration)
    with invalid_as_problem():
        svc.controls.mute(symbol, principal.actor, duration=duration, until=request.until, reason=request.reason)
    mute = svc.controls.mute_of(symbol)
    assert mute is not None  # just written
    return MuteOut.of(mute)


@router.delete("/mutes/{symbol}", status_code=204, response_class=Response,
               responses={**ADMIN_ONLY, **problem_responses(404)}, summary="Unmute a symbol")
def delete_mute(principal: Admin, svc: Svc, symbol: SymbolPath) -> Response:
    if svc.controls.unmute(symbol_param(symbol), principal.actor) is None:
        raise Problem(404, "not-muted", f"{symbol_param(symbol)} is not muted")
    return Response(status_code=204)


@router.get("/audit", response_model=AuditLog, summary="Changes to thresholds and mutes, newest first")
def audit(_: Reader, svc: Svc, symbol: str | None = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> AuditLog:
    if symbol is not None:
        symbol = symbol_param(symbol)
    return AuditLog(items=[ChangeOut.of(change) for change in svc.controls.audit_log(symbol=symbol, limit=limit)])
