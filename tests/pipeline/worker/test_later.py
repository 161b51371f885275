"""Delayed tasks held in Redis (real server): scheduled once per task, moved, cancelled, hurried, taken once."""

from __future__ import annotations

from redis import Redis

from pipeline import keys
from pipeline.settings import Settings
from pipeline.worker import later

DELIVER = "tickwatch.deliver"


def due_at(redis: Redis) -> list[float]:
    return [score for _, score in redis.zrange(keys.TASKS_DUE, 0, -1, withscores=True)]


def test_the_same_task_scheduled_again_moves_and_a_cancel_forgets_it(fresh_redis: Redis):
    later.send_later(fresh_redis, DELIVER, "slack", {"id": "a"}, 0, queue="alerts", at=100)
    later.send_later(fresh_redis, DELIVER, "slack", {"id": "a"}, 0, queue="alerts", at=50)
    assert due_at(fresh_redis) == [50]
    later.cancel(fresh_redis, DELIVER, "slack", {"id": "a"}, 0, queue="alerts")
    assert due_at(fresh_redis) == []


def test_hurry_brings_forward_only_the_named_tasks_first_argument(fresh_redis: Redis):
    for channel, at in [("slack", 500.0), ("kafka", 500.0), ("slack", 10.0)]:
        later.send_later(fresh_redis, DELIVER, channel, {"id": f"{channel}{at}"}, 3, queue="alerts", at=at)
    later.send_later(fresh_redis, "tickwatch.slack_refresh", "slack", "key", queue="alerts", at=500)
    assert later.hurry(fresh_redis, DELIVER, "slack", now=20) == 1  # the one already due stays as it is
    by_member = {raw: score for raw, score in fresh_redis.zrange(keys.TASKS_DUE, 0, -1, withscores=True)}
    moved = [raw for raw, score in by_member.items() if score == 20]
    assert len(moved) == 1 and b'"slack"' in moved[0] and DELIVER.encode() in moved[0]
    assert sorted(by_member.values()) == [10, 20, 500, 500]


def test_due_entries_are_queued_once(fresh_redis: Redis, real_stack: Settings):
    later.send_later(fresh_redis, DELIVER, "log", {"id": "x"}, 0, queue="tw-nobody-consumes", at=5)
    later.send_later(fresh_redis, DELIVER, "log", {"id": "y"}, 0, queue="tw-nobody-consumes", at=50)
    settings = real_stack.model_copy(update={"redis_url": _url(fresh_redis)})
    assert later.start_due(fresh_redis, settings, now=10) == 1
    assert later.start_due(fresh_redis, settings, now=10) == 0
    assert due_at(fresh_redis) == [50]
    assert fresh_redis.llen("tw-nobody-consumes") == 1  # queued on the broker, once


def _url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
