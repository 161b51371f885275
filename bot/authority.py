"""Who may do what from Slack.

- Reading (`/price`, `/anomalies`, `/mutes`, History) is open to everyone who can reach the bot.
- Acknowledging an alert is open to full members of the app's workspace.
- Changing mutes and thresholds, and previews (each a replay of up to 7 days of ticks), need a full member
  and, when TICKWATCH_SLACK_ADMIN_USERS / _CHANNELS are set, one of those people in one of those channels.

A full member is neither a guest (`is_restricted`, `is_ultra_restricted`) nor someone from another
organisation in a shared channel (`is_stranger`, or a home team other than the request's), as Slack's
`users.info` says; answers are cached in Redis for an hour. When Slack cannot say, the answer is no.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.backend import Backend
from bot.messages import Message, guest_refused_message, refused_message, unchecked_message
from pipeline import keys

logger = logging.getLogger(__name__)
MEMBER_CACHE_SECONDS = 3600


def _user(body: dict[str, Any]) -> tuple[str, str | None]:
    """(user id, the request's team id): slash commands carry them flat, interactions nested."""
    if isinstance(body.get("user"), dict):
        team = (body.get("team") or {}).get("id") or body["user"].get("team_id")
        return body["user"]["id"], team
    return body["user_id"], body.get("team_id")


async def full_member(backend: Backend, client: AsyncWebClient, body: dict[str, Any]) -> bool | None:
    """Whether the person is a full member of the request's workspace; None when Slack could not say."""
    user_id, team_id = _user(body)
    cached = await backend.run(backend.redis.get, keys.slack_member(user_id))
    if cached is not None:
        known = orjson.loads(cached)
    else:
        try:
            info = (await client.users_info(user=user_id))["user"]
        except (SlackApiError, KeyError, OSError) as error:
            logger.warning("could not check %s with users.info: %s", user_id, error)
            return None
        known = {key: bool(info.get(key)) for key in ("is_restricted", "is_ultra_restricted", "is_stranger")}
        known["team_id"] = info.get("team_id")
        await backend.run(backend.redis.set, keys.slack_member(user_id), orjson.dumps(known), ex=MEMBER_CACHE_SECONDS)
    outsider = known["is_restricted"] or known["is_ultra_restricted"] or known["is_stranger"]
    return not outsider and (team_id is None or known.get("team_id") in (None, team_id))


async def may_acknowledge(backend: Backend, client: AsyncWebClient, body: dict[str, Any]) -> Message | None:
    """None if the person may acknowledge, else the refusal to show them."""
    member = await full_member(backend, client, body)
    return None if member else (unchecked_message() if member is None else guest_refused_message())


async def may_change(
    backend: Backend, client: AsyncWebClient, body: dict[str, Any], channel_id: str | None
) -> Message | None:
    """None if the person may change mutes and thresholds (or preview) from this channel, else the refusal."""
    if (refusal := await may_acknowledge(backend, client, body)) is not None:
        return refusal
    users, channels = backend.settings.slack_admin_users, backend.settings.slack_admin_channels
    user_id, _ = _user(body)
    if (users and user_id not in users) or (channels and channel_id not in channels):
        return refused_message(users, channels)
    return None
