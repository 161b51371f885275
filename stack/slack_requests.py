"""Requests as Slack sends them to a bot: signed form bodies for slash commands and interactivity.

For the bot's tests and the demo's tour, which both talk to the real `POST /slack/events` over HTTP. The
signature is made by slack_sdk's own `SignatureVerifier`, the code the bot checks it with.

    body = slash_command("/price", "TSLA 1h", user="U0DEMO0001", channel="C0ALERTS01", response_url=url)
    httpx.post(f"{bot}/slack/events", content=body, headers=signed_headers(secret, body))
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

TEAM = "T0FAKE0001"
APP_ID = "A0TICKWATCH"
FORM = "application/x-www-form-urlencoded"


def signed_headers(secret: str, body: str, *, timestamp: str | None = None, content_type: str = FORM) -> dict[str, str]:
    """Slack's `X-Slack-Request-Timestamp` and `X-Slack-Signature` (v0 HMAC-SHA256) for `body`."""
    ts = timestamp or str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}


def slash_command(
    command: str, text: str, *, user: str, channel: str, response_url: str, channel_name: str = "market-alerts"
) -> str:
    """The form body of a slash command, e.g. `/price` with text `TSLA 1h`."""
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "response_url": response_url,
            "trigger_id": "1337.42.abcdef",
        }
    )


def interaction(payload: dict[str, Any]) -> str:
    """The form body of an interactivity request (`payload=<json>`), with the fields every one carries."""
    return urlencode(
        {
            "payload": json.dumps(
                {"team": {"id": TEAM, "domain": "fake"}, "api_app_id": APP_ID, "token": "legacy", **payload}
            )
        }
    )


def slack_user(user: str) -> dict[str, str]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM}


def block_actions(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    ts: str,
    response_url: str,
    select: bool = False,
    user_name: str | None = None,
) -> str:
    """A click on a button (or, with `select`, the choice of a menu option) of the message (channel, ts)."""
    element = (
        {"type": "static_select", "selected_option": {"value": value, "text": {"type": "plain_text", "text": value}}}
        if select
        else {"type": "button", "value": value}
    )
    who = slack_user(user) | ({"username": user_name, "name": user_name} if user_name else {})
    return interaction(
        {
            "type": "block_actions",
            "user": who,
            "container": {"type": "message", "channel_id": channel, "message_ts": ts},
            "channel": {"id": channel, "name": "market-alerts"},
            "message": {"ts": ts, "type": "message"},
            "trigger_id": f"trig-{uuid.uuid4().hex[:6]}",
            "response_url": response_url,
            "actions": [{"action_id": action_id, "block_id": "b", "action_ts": str(time.time()), **element}],
        }
    )


def app_home_opened(user: str) -> str:
    """The Events API body Slack sends when a person opens the app's Home tab (JSON)."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME0001", "tab": "home"},
        }
    )


def home_click(action_id: str, value: str, *, user: str, view_id: str) -> str:
    """A click on a button of the person's Home tab (no channel, no response_url)."""
    return interaction(
        {
            "type": "block_actions",
            "user": slack_user(user),
            "container": {"type": "view", "view_id": view_id},
            "view": {"id": view_id, "type": "home"},
            "trigger_id": f"trig-{uuid.uuid4().hex[:6]}",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "b",
                    "type": "button",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }
    )
