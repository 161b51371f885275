"""The bot in Socket Mode: the same Bolt app over a WebSocket Slack opens, no public URL needed.

`tickwatch bot --socket` runs this module (`python -m bot.socket_mode`). Needs an app-level token
(`SLACK_APP_TOKEN`, xapp-…, scope `connections:write`) and Socket Mode turned on in the app's settings
(`bot/manifest.yml` does both when `socket_mode_enabled: true`).
"""

from __future__ import annotations

import asyncio

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.bolt import NotConfigured, create_bolt_app
from pipeline import logs
from pipeline.settings import get_settings, reveal


async def serve() -> None:
    settings = get_settings()
    if not settings.slack_app_token:
        raise NotConfigured("set SLACK_APP_TOKEN (xapp-…, an app-level token with connections:write)")
    handler = AsyncSocketModeHandler(create_bolt_app(settings), reveal(settings.slack_app_token))
    await handler.start_async()


def main() -> None:
    logs.configure(get_settings())
    asyncio.run(serve())


if __name__ == "__main__":
    main()
