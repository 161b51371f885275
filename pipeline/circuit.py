"""Circuit breakers for what Tickwatch delivers to: each webhook endpoint, and Slack.

After `threshold` failures in a row a circuit opens: nothing is sent, deliveries wait on their schedule. After
`cooloff` seconds one attempt (the probe) is let through; its success closes the circuit, its failure opens it
for another cool-off. So an endpoint that is down costs one attempt per cool-off, not one per delivery, and a
flood of deliveries to it never holds a thread. State lives in Redis (one hash per circuit), decided by Lua
scripts, so every worker sees and moves the same circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.client import Pipeline

from pipeline import keys

State = Literal["closed", "open", "half_open"]

# {1} go; {2} go, as the probe; {0, when} wait until `when` (epoch s).
_ALLOW = """
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return {1} end
local reopen = tonumber(redis.call('HGET', KEYS[1], 'opened_at')) + tonumber(ARGV[2])
if tonumber(ARGV[1]) < reopen then return {0, tostring(reopen)} end
local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if tonumber(ARGV[1]) < probe then return {0, tostring(probe)} end
redis.call('HSET', KEYS[1], 'probe_until', tonumber(ARGV[1]) + tonumber(ARGV[3]))
return {2}
"""

# Returns the circuit's state after the outcome, and whether this outcome changed it ('opened', 'closed').
_RECORD = """
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  if state == 'open' then return {'closed', 'closed'} end
  return {'closed', ''}
end
if state == 'open' then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'probe_until')
  return {'open', ''}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
  return {'open', 'opened'}
end
return {'closed', ''}
"""


@dataclass(frozen=True)
class Gate:
    """Whether an attempt may go now: `go` (as `probe` when the circuit is half open), else wait `until`."""

    go: bool
    probe: bool = False
    until: float | None = None


@dataclass(frozen=True)
class Status:
    """A circuit as operators see it."""

    state: State
    failures: int
    opened_at: float | None
    retry_at: float | None


def allow(redis: Redis | Pipeline, name: str, *, now: float, cooloff: float, probe_lease: float) -> Any:
    """Whether an attempt may go now (read the answer with `gate`; on a pipeline it comes with `execute`).
    `probe_lease`: how long one attempt may take; a probe that never reports back (its worker died) frees the
    circuit after that."""
    return redis.eval(_ALLOW, 1, keys.circuit(name), now, cooloff, probe_lease)


def gate(answer: list[Any]) -> Gate:
    if answer[0] == 0:
        return Gate(go=False, until=float(answer[1]))
    return Gate(go=True, probe=answer[0] == 2)


def record(redis: Redis | Pipeline, name: str, *, ok: bool, now: float, threshold: int) -> Any:
    """Count an attempt's outcome (read the answer with `change`)."""
    return redis.eval(_RECORD, 1, keys.circuit(name), "1" if ok else "0", now, threshold)


def change(answer: list[Any]) -> str:
    """'opened' or 'closed' when the outcome changed the circuit, else ''."""
    return keys.text(answer[1])


def status(redis: Redis, name: str, *, cooloff: float) -> Status:
    raw = {keys.text(k): keys.text(v) for k, v in redis.hgetall(keys.circuit(name)).items()}
    opened = float(raw["opened_at"]) if "opened_at" in raw else None
    if raw.get("state") != "open" or opened is None:
        return Status("closed", int(raw.get("failures", 0)), None, None)
    probing = float(raw.get("probe_until", 0))
    state: State = "half_open" if probing > opened + cooloff else "open"
    return Status(state, int(raw.get("failures", 0)), opened, max(opened + cooloff, probing))
