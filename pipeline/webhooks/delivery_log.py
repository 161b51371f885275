"""The webhook delivery log and schedule, in Redis: one record per (event, subscription), kept 30 days.

Why Redis: a delivery changes on every attempt (pending -> attempts -> succeeded/failed) and must be
claimed atomically; Redis is already the pipeline's durable store (AOF on) and the Celery broker, so a
delivery's record, its queued task and its retry schedule live and survive together. It is bounded: each
subscription keeps its last KEEP_PER_SUBSCRIPTION deliveries, each record expires after RETENTION_SECONDS.

Scripts go as EVAL (Redis caches them by hash): in a pipeline, redis-py's registered scripts would cost
an extra SCRIPT EXISTS round trip each time.

Keys (prefix `tickwatch:webhooks:`):
- `delivery:<id>`   JSON DeliveryRecord (with the exact body that is signed, so replays send the same bytes)
- `log:<sub id>`    sorted set of delivery ids by creation time (newest last), trimmed with their records
- `due`             sorted set of jobs `<delivery id>|<seq>` by when they may run (retries, waiters, leases)
- `slot:<sub id>`   the job currently sending to that subscription: one request in flight per endpoint
- `waiting:<sub id>` jobs that found the slot taken; the next one is started as soon as it frees
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from redis import Redis
from redis.client import Pipeline

from pipeline import cursors, keys
from pipeline.settings import Settings
from pipeline.worker.app import DELIVER_WEBHOOK, app_for

DUE = keys.DELIVERIES_DUE
RETENTION_SECONDS = 30 * 86_400
KEEP_PER_SUBSCRIPTION = 1000
HISTORY_KEPT = 20
JOBS_PER_TASK = 10

Status = Literal["pending", "succeeded", "failed"]
Job = tuple[str, int]  # (delivery id, seq): a task for an older seq of a delivery does nothing


class Attempt(BaseModel):
    at: datetime
    response_code: int | None = Field(None, description="HTTP status; none when no response came")
    latency_ms: float | None = None
    error: str | None = Field(None, description="why it failed: status, timeout, refused address, …")


class Delivery(BaseModel):
    """One event for one subscription, across all its attempts (what GET …/deliveries lists)."""

    id: str
    subscription_id: str
    event_type: str
    event_id: str = Field(description="the webhook-id header: the same on every attempt and replay")
    status: Status = "pending"
    attempts: int = 0
    response_code: int | None = Field(None, description="of the last attempt")
    latency_ms: float | None = Field(None, description="of the last attempt")
    error: str | None = Field(None, description="of the last attempt")
    next_attempt_at: datetime | None = None
    created_at: datetime
    last_attempt_at: datetime | None = None
    history: list[Attempt] = Field(default_factory=list, description=f"the last {HISTORY_KEPT} attempts")


class DeliveryRecord(Delivery):
    """What is stored: the public view plus the body and the retry position."""

    body: str
    seq: int = Field(0, description="bumped whenever a new attempt is scheduled; older tasks stand down")
    step: int = Field(0, description="attempts made in this round (a replay starts a new round)")

    def view(self) -> Delivery:
        return Delivery.model_validate(self.model_dump(include=set(Delivery.model_fields)))

    @property
    def job(self) -> Job:
        return self.id, self.seq


def delivery_id(subscription_id: str, event_id: str) -> str:
    """Deterministic, so dispatching the same event twice (a re-run batch) creates one delivery."""
    return "dlv_" + hashlib.sha256(f"{subscription_id}|{event_id}".encode()).hexdigest()[:24]


def _member(job: Job) -> str:
    return f"{job[0]}|{job[1]}"


def _job(member: bytes | str) -> Job:
    text = member.decode() if isinstance(member, bytes) else member
    delivery, seq = text.rsplit("|", 1)
    return delivery, int(seq)


# Create a record unless it exists; log it; trim the log, deleting the records that fall off. 1 = created,
# 2 = exists but was never attempted (its task may have been lost: queue it again), 0 = exists.
_CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local record = cjson.decode(redis.call('GET', KEYS[1]))
  if record['status'] == 'pending' and tonumber(record['attempts']) == 0 then return 2 end
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if extra > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
    redis.call('DEL', ARGV[6] .. old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return 1
"""

# If the job is still current (its record pending at this seq), take the subscription's slot and return the
# record; or queue behind the holder: wait in `waiting` and, should the holder die, in `due` until the slot
# expires. Returns {1, record}, {0} (queued) or {-1} (stale: a newer attempt or a final state exists).
_ACQUIRE = """
local raw = redis.call('GET', KEYS[4])
if not raw then return {-1} end
local record = cjson.decode(raw)
if record['status'] ~= 'pending' or tonumber(record['seq']) ~= tonumber(ARGV[4]) then return {-1} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, raw} end
local ttl = math.max(redis.call('PTTL', KEYS[1]), 0)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], 86400)
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + ttl / 1000, ARGV[1])
return {0}
"""

# Free the slot and hand it to one waiter still scheduled (returned, for the caller to start now).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
while true do
  local next = redis.call('SPOP', KEYS[2])
  if not next then return false end
  if redis.call('ZREM', KEYS[3], next) == 1 then return next end
end
"""

# Jobs whose time has come, removed as they are taken, so each is started by one scheduler only.
_TAKE_DUE = """
local jobs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #jobs > 0 then redis.call('ZREM', KEYS[1], unpack(jobs)) end
return jobs
"""


def create(redis: Redis, records: list[DeliveryRecord]) -> tuple[list[DeliveryRecord], list[Job]]:
    """Store new deliveries (one round trip). Returns those that did not exist yet, and the jobs to queue: the
    new ones plus existing ones never attempted (a crash between storing and queueing loses no delivery;
    a job queued twice is harmless, see pipeline.webhook_delivery)."""
    if not records:
        return [], []
    pipe = redis.pipeline(transaction=False)
    for record in records:
        pipe.eval(
            _CREATE,
            2,
            keys.delivery_record(record.id),
            keys.delivery_log(record.subscription_id),
            record.model_dump_json(),
            RETENTION_SECONDS,
            record.created_at.timestamp(),
            record.id,
            KEEP_PER_SUBSCRIPTION,
            keys.DELIVERY_RECORD_PREFIX,
        )
    answers = pipe.execute()
    return (
        [record for record, answer in zip(records, answers, strict=True) if answer == 1],
        [(record.id, 0) for record, answer in zip(records, answers, strict=True) if answer],
    )


def load(redis: Redis, delivery: str) -> DeliveryRecord | None:
    raw = redis.get(keys.delivery_record(delivery))
    return DeliveryRecord.model_validate_json(raw) if raw else None


def save(redis: Redis | Pipeline, record: DeliveryRecord) -> None:
    """Update a record in place (never re-creates one deleted meanwhile with its subscription)."""
    redis.set(keys.delivery_record(record.id), record.model_dump_json(), xx=True, keepttl=True)


def page(
    redis: Redis, subscription_id: str, *, limit: int, cursor: str | None = None, status: Status | None = None
) -> tuple[list[DeliveryRecord], str | None]:
    """Newest first, `limit` at most, after `cursor` (pipeline.cursors; ValueError for a bad one); returns the
    next page's cursor."""
    position = cursors.decode(cursor)
    if position is not None and not isinstance(position[0], int | float):
        raise ValueError(cursors.INVALID)
    found: list[DeliveryRecord] = []
    upper: float | str = f"({position[0]!r}" if position is not None else "+inf"
    while len(found) < limit:
        rows = redis.zrevrangebyscore(
            keys.delivery_log(subscription_id), upper, "-inf", start=0, num=limit, withscores=True
        )
        if not rows:
            return found, None
        for record in _load_many(redis, [keys.text(member) for member, _ in cast(list[tuple[bytes, float]], rows)]):
            if status is None or record.status == status:
                found.append(record)
        upper = f"({rows[-1][1]}"
        if len(rows) < limit:
            return found[:limit], None
    found = found[:limit]
    return found, cursors.encode([found[-1].created_at.timestamp()])


def created_since(redis: Redis, subscription_id: str, since: datetime) -> list[DeliveryRecord]:
    members = redis.zrangebyscore(keys.delivery_log(subscription_id), since.timestamp(), "+inf")
    return _load_many(redis, [keys.text(member) for member in cast(list[bytes], members)])


def _load_many(redis: Redis, members: list[str]) -> list[DeliveryRecord]:
    if not members:
        return []
    raws = redis.mget([keys.delivery_record(member) for member in members])
    return [DeliveryRecord.model_validate_json(raw) for raw in raws if raw]


def forget(redis: Redis, subscription_id: str) -> None:
    """Drop a deleted subscription's log (its scheduled jobs then find no record and stand down)."""
    members = redis.zrange(keys.delivery_log(subscription_id), 0, -1)
    doomed = [keys.delivery_record(keys.text(member)) for member in cast(list[bytes], members)]
    doomed += [
        keys.delivery_log(subscription_id),
        keys.delivery_slot(subscription_id),
        keys.delivery_waiting(subscription_id),
    ]
    for start in range(0, len(doomed), 500):
        redis.delete(*doomed[start : start + 500])


def schedule(redis: Redis | Pipeline, job: Job, at: datetime) -> None:
    redis.zadd(DUE, {_member(job): at.timestamp()})


def take_due(redis: Redis, now: datetime, limit: int = 500) -> list[Job]:
    return [_job(member) for member in redis.eval(_TAKE_DUE, 1, DUE, now.timestamp(), limit)]


def start_due(redis: Redis, settings: Settings, now: float) -> int:
    """Queue the deliveries whose retry, wait or lease is over; returns how many."""
    jobs = take_due(redis, datetime.fromtimestamp(now, UTC))
    if jobs:
        enqueue(settings, jobs)
    return len(jobs)


def lease(redis: Redis | Pipeline, jobs: Iterable[Job], *, seconds: float) -> None:
    """Schedule each job's own re-run `seconds` from now, before it starts: if its worker dies mid-attempt, the
    scheduler starts it again; an attempt that ends moves or removes the entry (`unlease`, `schedule`)."""
    at = datetime.now(UTC).timestamp() + seconds
    redis.zadd(DUE, {_member(job): at for job in jobs})


def unlease(redis: Redis | Pipeline, job: Job) -> None:
    redis.zrem(DUE, _member(job))


def _slot_keys(subscription_id: str) -> list[str]:
    return [keys.delivery_slot(subscription_id), keys.delivery_waiting(subscription_id), DUE]


def acquire(redis: Redis | Pipeline, subscription_id: str, job: Job, *, hold_seconds: float) -> Any:
    """Take the subscription's one sending slot for at most `hold_seconds` if `job` is still current, or queue
    behind its holder. Its result (read with `acquired`) tells which; on a pipeline it comes with `execute`."""
    now = datetime.now(UTC).timestamp()
    return redis.eval(
        _ACQUIRE,
        4,
        *_slot_keys(subscription_id),
        keys.delivery_record(job[0]),
        _member(job),
        int(hold_seconds * 1000),
        now,
        job[1],
    )


def acquired(result: list[Any]) -> DeliveryRecord | Literal["waiting", "stale"]:
    """What `acquire` answered: the current record (the slot is ours), "waiting" or "stale"."""
    if result[0] == 1:
        return DeliveryRecord.model_validate_json(result[1])
    return "waiting" if result[0] == 0 else "stale"


def release(redis: Redis | Pipeline, subscription_id: str, job: Job) -> Any:
    """Free the slot; its result (read with `waiter`) is the waiting job that should start now, if any."""
    return redis.eval(_RELEASE, 3, *_slot_keys(subscription_id), _member(job))


def waiter(result: bytes | None) -> Job | None:
    return _job(result) if result else None


def enqueue(settings: Settings, jobs: Iterable[Job]) -> None:
    """Queue delivery tasks on the alerts queue, up to JOBS_PER_TASK jobs each (an event's deliveries to many
    subscriptions go side by side in a worker's delivery threads; a Celery task per delivery would cost more
    than the delivery). Sent by name: senders need not import the task."""
    pending = list(jobs)
    app = app_for(settings)
    with app.producer_or_acquire() as producer:
        for start in range(0, len(pending), JOBS_PER_TASK):
            app.send_task(
                DELIVER_WEBHOOK,
                args=(pending[start : start + JOBS_PER_TASK],),
                queue=settings.alerts_queue,
                producer=producer,
            )
