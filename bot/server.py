"""The bot over HTTP: FastAPI with Bolt's async adapter at `POST /slack/events`, and `GET /healthz`.

One URL takes slash commands, interactivity (buttons, menus, modals) and events, as `bot/manifest.yml`
declares. Run it with `tickwatch bot --port 3000`, i.e.
`uvicorn.run("bot.server:create_app", factory=True, ...)`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from bot.bolt import create_bolt_app
from pipeline.body_limit import BodyLimit
from pipeline.settings import Settings, get_settings, reveal

EVENTS_PATH = "/slack/events"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    handler = AsyncSlackRequestHandler(create_bolt_app(settings))
    signed = SignatureVerifier((reveal(settings.slack_signing_secret) or "").strip())
    api = FastAPI(title="Tickwatch Slack bot", docs_url=None, redoc_url=None, openapi_url=None)
    api.add_middleware(BodyLimit)

    @api.post(EVENTS_PATH)
    async def slack_events(request: Request) -> Response:
        # Checked here, before Bolt parses anything: an unsigned body is refused unread by the app.
        if not signed.is_valid_request(await request.body(), dict(request.headers)):
            return Response("invalid signature", status_code=401)
        return await handler.handle(request)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api
