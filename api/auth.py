"""Bearer-token authentication and scopes, as FastAPI dependencies (shared by every router, webhooks too).

`Depends(require_scope("read"))` on a router lets any valid token in; `require_scope("admin")` only admin
tokens (controls, webhooks). No token or an unknown one: 401 with `WWW-Authenticate: Bearer`; a read token
on an admin route: 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from api.deps import services
from api.errors import Problem
from pipeline import tokens
from pipeline.context import Context
from pipeline.controls import Actor

_bearer = HTTPBearer(auto_error=False, description="an API token: TICKWATCH_API_TOKENS or `tickwatch token create`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and scope."""

    name: str
    scope: tokens.Scope

    @property
    def actor(self) -> Actor:
        """How controls changes made through the API are audited."""
        return Actor(name=self.name, via="api")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="tickwatch"'})


def authenticated(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    svc: Annotated[Context, Depends(services)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("send an API token: Authorization: Bearer <token>")
    info = tokens.authenticate(svc.redis, svc.settings, credentials.credentials)
    if info is None:
        raise _unauthorized("unknown or revoked token")
    return Principal(info.name, info.scope)


def is_admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    svc: Annotated[Context, Depends(services)],
) -> bool:
    """For open routes that show more to admins: whether the request carries a valid admin token (no error
    otherwise; Redis away counts as no)."""
    if credentials is None:
        return False
    try:
        info = tokens.authenticate(svc.redis, svc.settings, credentials.credentials)
    except RedisError:
        return False
    return info is not None and info.scope == "admin"


def require_scope(scope: tokens.Scope) -> Callable[..., Principal]:
    """A dependency admitting tokens of `scope` (admin tokens may also read)."""

    def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if scope == "admin" and principal.scope != "admin":
            raise Problem(
                403,
                "forbidden",
                f"token {principal.name!r} has scope {principal.scope!r}; this route needs an admin token",
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require_scope("read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]
