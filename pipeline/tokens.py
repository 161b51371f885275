"""API bearer tokens: static ones from `TICKWATCH_API_TOKENS`, and ones made with `tickwatch token create`.

Created tokens are shown once and stored only as their SHA-256 in one Redis hash (hash -> name, scope,
when), so a leaked Redis dump does not leak a usable token. A token is long and random, so an unsalted
fast hash is enough (there is nothing to brute-force). Static tokens are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import orjson
from redis import Redis

from pipeline import keys
from pipeline.settings import Settings

Scope = Literal["read", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "admin")
TOKEN_PREFIX = "tw_"


@dataclass(frozen=True)
class TokenInfo:
    """Who a token belongs to; `source` is "env" (TICKWATCH_API_TOKENS) or "redis" (token create)."""

    name: str
    scope: Scope
    source: Literal["env", "redis"]
    created_at: float | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(redis: Redis, settings: Settings, name: str, scope: Scope) -> str:
    """Make a token, store its hash and return it (the only time it is seen). Names are unique."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name (who or what uses it)")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
    if any(info.name == name for info in list_tokens(redis, settings)):
        raise ValueError(f"a token named {name!r} exists; revoke it first or choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    redis.hset(keys.API_TOKENS, digest(token), orjson.dumps({"name": name, "scope": scope, "created_at": time.time()}))
    return token


def authenticate(redis: Redis, settings: Settings, token: str) -> TokenInfo | None:
    """The token's owner, or None. Static tokens are all compared (constant time, no early exit)."""
    found: TokenInfo | None = None
    for static in settings.api_tokens:
        if hmac.compare_digest(static.token.get_secret_value().encode(), token.encode()):
            found = TokenInfo(static.name, static.scope, "env")
    if found:
        return found
    stored = redis.hget(keys.API_TOKENS, digest(token))  # looked up by hash: timing says nothing about the token
    if stored is None:
        return None
    data = orjson.loads(stored)
    return TokenInfo(data["name"], data["scope"], "redis", data.get("created_at"))


def list_tokens(redis: Redis, settings: Settings) -> list[TokenInfo]:
    """Every token's owner and scope (never the token), static ones first."""
    static = [TokenInfo(t.name, t.scope, "env") for t in settings.api_tokens]
    stored = [orjson.loads(raw) for raw in redis.hvals(keys.API_TOKENS)]
    made = sorted(
        (TokenInfo(d["name"], d["scope"], "redis", d.get("created_at")) for d in stored), key=lambda info: info.name
    )
    return static + made


def revoke(redis: Redis, name: str) -> bool:
    """Delete the stored token named `name`; False if there is none (static tokens are revoked in the env)."""
    for key, raw in redis.hgetall(keys.API_TOKENS).items():
        if orjson.loads(raw)["name"] == name:
            return bool(redis.hdel(keys.API_TOKENS, key))
    return False
