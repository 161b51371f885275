"""The FastAPI application: `create_app()` is the factory `tickwatch api` hands to uvicorn.

Routes are thin views over `pipeline` services; every route under `/v1` needs a bearer token (see
api.auth), the health endpoints do not. Errors are RFC 9457 problem details (api.errors).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import anomalies, auth, controls, errors, groups, health, prices, watches, webhooks
from pipeline.body_limit import BodyLimit
from pipeline.context import Context
from pipeline.settings import Settings, get_settings

DESCRIPTION = """Market surveillance data and controls: symbols, prices, OHLCV bars, anomalies, thresholds,
mutes and webhook subscriptions. Send `Authorization: Bearer <token>` (tokens: `TICKWATCH_API_TOKENS` or
`tickwatch token create`); changing controls and anything about webhooks needs an `admin` token. Lists are
paged with cursors: pass a page's `next_cursor` back as `?cursor=`, or call its `next` link. Errors are
`application/problem+json` (RFC 9457); a validation error names the field in `errors[].field`."""


TAGS = [
    {
        "name": "prices",
        "description": "Known symbols, raw ticks (a page at a time) and OHLCV bars. Time ranges "
        "default to a recent span ending at the symbol's last tick; at most 31 days.",
    },
    {
        "name": "anomalies",
        "description": "What the detection rules found: figures, status (open, acknowledged, "
        "resolved), who acknowledged, the Slack message.",
    },
    {
        "name": "controls",
        "description": "Per-symbol and per-group rules (drop, rise, zscore, volume, gap, relative) and mutes, with "
        "the same limits and audit log as the Slack bot. Changes need an admin token.",
    },
    {
        "name": "watches",
        "description": "Personal watches: a person's own rules on symbols or groups, alerted to them alone by Slack "
        "DM (channel mutes do not apply), and their quiet hours. Admin tokens only.",
    },
    {
        "name": "webhooks",
        "description": "Subscriptions to `anomaly.detected`, `anomaly.resolved` and "
        "`digest.daily`, signed per Standard Webhooks (`webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`), retried on the spec's "
        "schedule (about three days); the delivery log, replay and recovery. "
        "Admin tokens only.",
    },
    {"name": "health", "description": "For operators and probes; no token needed."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Swagger UI (/docs) and ReDoc (/redoc) from assets shipped in the fastapi-offline wheel, not a CDN: the docs
    # work on a machine with no internet, as the demo's.
    app = FastAPIOffline(title="Tickwatch API", version="1", description=DESCRIPTION, openapi_tags=TAGS)
    svc = Context(settings)
    app.state.services = svc
    app.state.engine_checks = health.EngineChecks(svc)
    errors.install(app)
    app.include_router(health.router)
    for router in (prices.router, anomalies.router, controls.router, groups.router, watches.router, webhooks.router):
        app.include_router(router)
    app.webhooks.include_router(webhooks.events)  # documents what subscribers receive
    auth.check_token_first(app)
    app.add_middleware(BodyLimit)
    return app
