"""Tasks that must run later, kept in Redis until they are due: retries, throttled edits, leases.

Celery's own `countdown` keeps a waiting task in the memory of the worker that took it: a worker killed meanwhile
hands it back only after the broker's visibility timeout (minutes), and a wait longer than that runs it twice.
Here a delayed task is a member of one Redis sorted set (scored by when it is due), which outlives any worker;
every worker that consumes the alerts queue runs a scheduler (pipeline.worker.scheduler) that queues what is
due, each entry taken by exactly one scheduler. The same call twice stores one entry (the member is the task
itself), which is what makes a lease cheap: schedule the task's own re-run before doing the work, cancel it
after.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from redis import Redis
from redis.client import Pipeline

from pipeline import keys
from pipeline.settings import Settings
from pipeline.worker.app import send

# Entries whose time has come, removed as they are taken (so each is queued once, by one scheduler).
_TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def _member(name: str, args: tuple[Any, ...], queue: str) -> bytes:
    return orjson.dumps({"task": name, "args": args, "queue": queue}, option=orjson.OPT_SORT_KEYS)


def send_later(redis: Redis | Pipeline, name: str, *args: Any, queue: str, at: float) -> None:
    """Queue task `name` with `args` on `queue` at `at` (epoch s); the same task scheduled again moves."""
    redis.zadd(keys.TASKS_DUE, {_member(name, args, queue): at})


def cancel(redis: Redis, name: str, *args: Any, queue: str) -> None:
    """Forget a scheduled task (e.g. a lease whose work finished)."""
    redis.zrem(keys.TASKS_DUE, _member(name, args, queue))


# The waiting entries of one task whose first argument is ARGV[2] (e.g. Slack's deliveries), made due at ARGV[1].
_HURRY = """
local moved = 0
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  local entry = cjson.decode(member)
  if entry['task'] == ARGV[3] and entry['args'][1] == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], member)
    moved = moved + 1
  end
end
return moved
"""


def hurry(redis: Redis, name: str, first_arg: str, *, now: float) -> int:
    """Make every waiting run of task `name` whose first argument is `first_arg` due now (e.g. the deliveries
    that backed off while Slack was down, once it answers again); returns how many."""
    return cast(int, redis.eval(_HURRY, 1, keys.TASKS_DUE, now, first_arg, name))


def start_due(redis: Redis, settings: Settings, now: float, limit: int = 500) -> int:
    """Queue the tasks whose time has come; returns how many."""
    due = cast(list[bytes], redis.eval(_TAKE_DUE, 1, keys.TASKS_DUE, now, limit))
    for done, raw in enumerate(due):
        entry = orjson.loads(raw)
        try:
            send(settings, entry["task"], *entry["args"], queue=entry["queue"])
        except Exception:
            redis.zadd(keys.TASKS_DUE, dict.fromkeys(due[done:], now))  # taken but not queued: due again
            raise
    return len(due)
