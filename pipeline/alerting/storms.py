"""Alert storms: when more than N alerts reach one Slack channel within a minute (a market-wide move), the
rest go to ONE grouped message instead of a message each. Membership lives in Redis.

A storm starts with the alert that makes the count over the last `window` exceed the threshold, and lasts
while alerts keep coming (each one extends it by `window`). Deciding "alone or which storm" is one Lua
script, so concurrent deliveries on a threaded worker agree on exactly one storm (and one grouped message).
The alerts before the threshold keep their own messages.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from redis import Redis

from pipeline import keys
from pipeline.alerting.messages import StormView
from pipeline.schema import Anomaly, SlackRef

TTL_SECONDS = 2 * 24 * 3600  # how long a storm's members and message ref are kept (buttons work that long)

# KEYS: recent alerts (zset), the channel's active storm, the candidate storm's meta hash, the alert's storm.
# ARGV: now ms, window ms, threshold, anomaly id, candidate storm id, ttl seconds.
_REGISTER = """
local active = redis.call('GET', KEYS[2])
if active then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[4], active, 'EX', ARGV[6])
  return active
end
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[2])
  redis.call('HSET', KEYS[3], 'started_at', ARGV[1], 'threshold', ARGV[3], 'window_ms', ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
  redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6])
  return ARGV[5]
end
return false
"""


def register(
    redis: Redis, channel: str, anomaly_id: str, *, threshold: int, window_seconds: int, now_ms: int | None = None
) -> str | None:
    """The storm a newly detected alert to `channel` belongs to, or None: post it on its own.

    Idempotent per alert (a retried delivery gets the same answer once it joined a storm).
    """
    if existing := storm_of(redis, anomaly_id):
        return existing
    candidate = f"storm-{uuid.uuid4().hex[:12]}"
    script_keys = [
        keys.storm_recent(channel),
        keys.storm_active(channel),
        keys.storm_meta(candidate),
        keys.storm_of(anomaly_id),
    ]
    now = round(time.time() * 1000) if now_ms is None else now_ms
    found = redis.eval(
        _REGISTER,
        len(script_keys),
        *script_keys,
        now,
        window_seconds * 1000,
        threshold,
        anomaly_id,
        candidate,
        TTL_SECONDS,
    )
    return found.decode() if isinstance(found, bytes) else found


def storm_of(redis: Redis, anomaly_id: str) -> str | None:
    found = redis.get(keys.storm_of(anomaly_id))
    return keys.text(found) if found else None


def put_member(redis: Redis, storm_id: str, anomaly: Anomaly) -> None:
    """Add or update a member with its newest view (the grouped message shows it)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.storm_members(storm_id), anomaly.id, anomaly.model_dump_json())
    pipe.expire(keys.storm_members(storm_id), TTL_SECONDS)
    pipe.execute()


def members(redis: Redis, storm_id: str) -> list[Anomaly]:
    return [Anomaly.model_validate_json(raw) for raw in redis.hvals(keys.storm_members(storm_id))]


def storm_members(redis: Redis, storm_id: str) -> list[str]:
    """The anomaly ids grouped in a storm's message (what "Acknowledge all" / "Mute all" act on)."""
    return sorted(keys.text(key) for key in redis.hkeys(keys.storm_members(storm_id)))


def view(redis: Redis, storm_id: str, current: list[Anomaly]) -> StormView:
    """The grouped message's data: `current` members (their newest state) and when the storm started."""
    meta = {keys.text(key): keys.text(value) for key, value in redis.hgetall(keys.storm_meta(storm_id)).items()}
    started = datetime.fromtimestamp(int(meta.get("started_at", 0)) / 1000, tz=UTC)
    return StormView(
        storm_id, started, int(meta.get("threshold", 0)), current, int(meta.get("window_ms", 60_000)) // 1000
    )


def message_ref(redis: Redis, storm_id: str) -> SlackRef | None:
    meta = redis.hmget(keys.storm_meta(storm_id), ["channel", "ts"])
    return SlackRef(channel=keys.text(meta[0]), ts=keys.text(meta[1])) if meta[0] and meta[1] else None


def set_message_ref(redis: Redis, storm_id: str, ref: SlackRef) -> None:
    redis.hset(keys.storm_meta(storm_id), mapping={"channel": ref.channel, "ts": ref.ts})
