"""RFC 9457 problem details for every error the API answers (`application/problem+json`).

Routes raise `Problem` (or let FastAPI raise its own errors); the handlers here turn each into the same
shape: type, title, status, detail, instance, plus `errors` (which field, what is wrong) on validation
failures and `suggestions` for an unknown symbol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from elasticsearch import ConnectionError as EsConnectionError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.history import UnknownSymbol

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://tickwatch.dev/problems/"


class FieldError(BaseModel):
    field: str = Field(description="where the bad value is, e.g. query.interval or body.threshold_pct")
    message: str


class ProblemDetails(BaseModel):
    """The body of every error response."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="the path that was requested")
    errors: list[FieldError] | None = None
    suggestions: list[str] | None = Field(None, description="closest known symbols, for an unknown symbol")


class Problem(Exception):
    """Raise from a route to answer with a problem: `Problem(404, "unknown-symbol", "…", suggestions=[…])`."""

    def __init__(
        self, status: int, kind: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.headers, self.extra = status, kind, detail, headers, extra


def problem_response(
    request: Request,
    status: int,
    kind: str,
    detail: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = ProblemDetails(
        type=TYPE_BASE + kind,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        **extra,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _problem(request: Request, error: Problem) -> JSONResponse:
    return problem_response(request, error.status, error.kind, error.detail, headers=error.headers, **error.extra)


def _field_error(item: dict[str, Any]) -> FieldError:
    if item["type"] == "json_invalid":  # its loc is ("body", character offset), not a field
        reason = item.get("ctx", {}).get("error", "JSON decode error")
        return FieldError(field="body", message=f"not valid JSON: {reason} at character {item['loc'][-1]}")
    return FieldError(field=_field(item["loc"]), message=item["msg"].removeprefix("Value error, "))


async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = [_field_error(item) for item in error.errors()]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return problem_response(request, 422, "validation", detail, errors=errors)


async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
    kind = HTTPStatus(error.status_code).phrase.lower().replace(" ", "-")
    detail = str(error.detail)
    if detail == HTTPStatus(error.status_code).phrase:  # Starlette's routing says no more than the status
        allowed = next((value for key, value in (error.headers or {}).items() if key.lower() == "allow"), "")
        detail = {
            404: f"no route {request.method} {request.url.path}; the API's routes are listed at /docs",
            405: f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}",
        }.get(error.status_code, detail)
    return problem_response(request, error.status_code, kind, detail, headers=error.headers)


async def _unknown_symbol(request: Request, error: UnknownSymbol) -> JSONResponse:
    return problem_response(request, 404, "unknown-symbol", str(error), suggestions=error.suggestions)


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    return problem_response(
        request,
        503,
        "unavailable",
        f"a backing service is unreachable ({error.__class__.__module__.split('.')[0]}); try again shortly",
    )


async def _unexpected(request: Request, _: Exception) -> JSONResponse:
    return problem_response(request, 500, "internal", "unexpected error; it has been logged")


def install(app: FastAPI) -> None:
    """Answer every error of `app` with problem details."""
    app.add_exception_handler(Problem, _problem)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    app.add_exception_handler(UnknownSymbol, _unknown_symbol)  # type: ignore[arg-type]  # Starlette types handlers for Exception
    for unreachable in (EsConnectionError, RedisConnectionError):
        app.add_exception_handler(unreachable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
    document_problems(app)


_PROBLEM_SCHEMA = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For `responses=` on routes and routers, so the OpenAPI document shows the problem shape."""
    return {
        status: {
            "model": ProblemDetails,
            "content": {PROBLEM_JSON: _PROBLEM_SCHEMA},
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


def document_problems(app: FastAPI) -> None:
    """Error responses are problem+json only: drop the application/json twin FastAPI adds beside it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {})
                    if PROBLEM_JSON in content:
                        content.pop("application/json", None)
            for operation in (op for event in schema.get("webhooks", {}).values() for op in event.values()):
                operation["responses"].pop("422", None)  # FastAPI's, but subscribers answer as they like
            if "HTTPValidationError" not in json.dumps(schema["paths"] | schema.get("webhooks", {})):
                for unused in ("HTTPValidationError", "ValidationError"):
                    schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
