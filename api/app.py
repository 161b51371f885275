"""The FastAPI application: `create_app()` is the factory `tickwatch api` hands to uvicorn.

Routes are thin views over `pipeline` services; every route under `/v1` needs a bearer token (see
api.auth), the health endpoints do not. Errors are RFC 9457 problem details (api.errors).
"""

from __future__ import annotations

from fastapi import FastAPI

from api import anomalies, controls, errors, health, prices, webhooks
from api.deps import Services
from pipeline.settings import Settings, get_settings

DESCRIPTION = """Market surveillance data and controls: symbols, prices, OHLCV bars, anomalies, thresholds
and mutes. Send `Authorization: Bearer <token>` (tokens: `TICKWATCH_API_TOKENS` or `tickwatch token create`);
changing controls needs an `admin` token. Errors are `application/problem+json` (RFC 9457)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Tickwatch API", version="1", description=DESCRIPTION, docs_url="/docs")
    svc = Services(settings)
    app.state.services = svc
    app.state.engine_checks = health.EngineChecks(svc)
    errors.install(app)
    app.include_router(health.router)
    for router in (prices.router, anomalies.router, controls.router, webhooks.router):
        app.include_router(router)
    return app
