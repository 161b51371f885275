"""Bearer-token authentication and scopes, as FastAPI dependencies (shared by every router, webhooks too).

`Depends(require_scope("read"))` on a router lets any valid token in; `require_scope("admin")` only admin
tokens (controls, webhooks). No token or an unknown one: 401 with `WWW-Authenticate: Bearer`; a read token
on an admin route: 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from api.deps import services
from api.errors import Problem, problem_response
from pipeline import tokens
from pipeline.audit import Actor
from pipeline.context import Context

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


def check_token_first(app: FastAPI) -> None:
    """Every `/v1` request is authenticated, and counted against its token's rate limit, before its body is read
    or parsed: no token, no work (a broken or huge body from an anonymous caller gets 401, not 422 or a parse)."""

    @app.middleware("http")
    async def token_first(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/v1"):
            svc: Context = request.app.state.services
            credentials = await _bearer(request)
            try:
                principal = authenticated(credentials, svc)
                wait = svc.rate_limits.hit("api", principal.name)
            except Problem as refused:
                return problem_response(request, refused.status, refused.kind, refused.detail, headers=refused.headers)
            except RedisError:
                return problem_response(request, 503, "unavailable", "Redis is not reachable; try again shortly")
            if wait is not None:
                return problem_response(
                    request,
                    429,
                    "rate-limited",
                    f"token {principal.name!r} made more than {svc.settings.api_rate_limit} requests; slow down",
                    headers={"Retry-After": str(round(wait))},
                )
        return await call_next(request)


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
