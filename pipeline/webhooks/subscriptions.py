"""Webhook subscriptions: endpoints, their secrets, and `dispatch`, the one way an event reaches them.

A subscription is a URL, the event types it wants and optionally the symbols it cares about. Its signing
secrets (`whsec_…`, Standard Webhooks) are shown once, at creation or rotation, and stored encrypted
(pipeline.encryption). After a rotation the old secret keeps signing alongside the new one for
TICKWATCH_WEBHOOK_SECRET_GRACE_SECONDS, so receivers can switch without losing a message.

Storage: Redis hash `tickwatch:webhooks:subscriptions` (id -> JSON), durable with AOF, read by the
workers on every dispatch (one HGETALL). Deliveries and their schedule: pipeline.delivery_log. Sending:
pipeline.webhook_delivery (Celery). Every function raises ValueError subclasses with user-ready messages.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from redis import Redis, WatchError
from redis.client import Pipeline

from pipeline import circuit, keys
from pipeline.schema import EventType, iso, normalise_symbol
from pipeline.settings import Settings
from pipeline.webhooks import delivery_log, encryption, ssrf
from pipeline.webhooks.delivery_log import Delivery, DeliveryRecord

SUBSCRIPTIONS = keys.SUBSCRIPTIONS
FAILING_SINCE = keys.FAILING_SINCE
TEST_EVENT = "webhook.test"
MAX_SYMBOLS = 500


class NotFound(LookupError):
    """No such subscription or delivery."""


class Conflict(ValueError):
    """The request does not fit the current state (e.g. replaying a delivery still in progress)."""


EventTypes = Annotated[list[EventType], AfterValidator(lambda events: list(dict.fromkeys(events)))]
Symbols = Annotated[list[str], AfterValidator(lambda symbols: sorted({normalise_symbol(s) for s in symbols}))]


class SubscriptionSpec(BaseModel):
    """What a caller chooses (POST /v1/webhooks)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a silent default

    url: str = Field(
        description="http(s) URL receiving POSTs; must resolve to public addresses only",
        examples=["https://example.com/hooks/tickwatch"],
        max_length=2000,
    )
    events: EventTypes = Field(min_length=1, description="event types to receive")
    symbols: Symbols | None = Field(
        None, max_length=MAX_SYMBOLS, description="only events about these symbols; null: all symbols"
    )
    description: str = Field("", max_length=500)


class SubscriptionPatch(BaseModel):
    """What PATCH may change; fields left out stay as they are. `enabled: true` re-enables a disabled one."""

    url: str | None = Field(None, max_length=2000)
    events: EventTypes | None = Field(None, min_length=1)
    symbols: Symbols | None = Field(None, max_length=MAX_SYMBOLS, description="null: all symbols")
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None

    model_config = ConfigDict(extra="forbid")

    @field_validator("url", "events", "description", "enabled")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        """Only `symbols` may be set to null (all symbols); leaving a field out keeps it."""
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null; leave it out to keep it as it is")
        return value


class Subscription(BaseModel):
    """A subscription as the API shows it (never with its secrets)."""

    id: str
    url: str
    events: list[EventType]
    symbols: list[str] | None
    description: str
    enabled: bool = True
    created_at: datetime
    disabled_reason: str | None = None


class CircuitView(BaseModel):
    """The subscription's circuit breaker: `open` means no attempts until `retry_at` (then one probe)."""

    state: Literal["closed", "open", "half_open"]
    failures: int = Field(description="failed attempts in a row while closed")
    opened_at: datetime | None = None
    retry_at: datetime | None = Field(None, description="when the next (probe) attempt may go")


class SubscriptionStatus(Subscription):
    """A subscription with its circuit breaker (GET /v1/webhooks/{id})."""

    circuit: CircuitView


class StoredSecret(BaseModel):
    encrypted: str
    created_at: datetime
    expires_at: datetime | None = Field(None, description="set when a newer secret replaced it")


class StoredSubscription(Subscription):
    secrets: list[StoredSecret] = Field(description="newest first")

    def view(self) -> Subscription:
        return Subscription.model_validate(self.model_dump(include=set(Subscription.model_fields)))

    def wants(self, event_type: str, symbol: str | None) -> bool:
        return (
            self.enabled
            and event_type in self.events
            and (self.symbols is None or symbol is None or symbol in self.symbols)
        )


def circuit_name(subscription_id: str) -> str:
    """The subscription's circuit breaker (pipeline.circuit)."""
    return f"webhook:{subscription_id}"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_url(settings: Settings, url: str) -> str:
    ssrf.check(url, settings.webhook_allow_networks)
    return url


# --- subscriptions ---------------------------------------------------------------------------------------


def create(redis: Redis, settings: Settings, spec: SubscriptionSpec) -> tuple[Subscription, str]:
    """Store a new subscription; returns it and its secret (the only time the secret is shown)."""
    _check_url(settings, spec.url)
    now = datetime.now(UTC)
    secret = new_secret()
    stored = StoredSubscription(
        id=f"sub_{uuid.uuid4().hex[:20]}",
        created_at=now,
        **spec.model_dump(),
        secrets=[StoredSecret(encrypted=encryption.encrypt(settings, secret), created_at=now)],
    )
    redis.hset(SUBSCRIPTIONS, stored.id, stored.model_dump_json())
    return stored.view(), secret


def load(redis: Redis, subscription_id: str) -> StoredSubscription:
    raw = redis.hget(SUBSCRIPTIONS, subscription_id)
    if raw is None:
        raise NotFound(f"no webhook subscription {subscription_id!r}")
    return StoredSubscription.model_validate_json(raw)


def get(redis: Redis, subscription_id: str) -> Subscription:
    return load(redis, subscription_id).view()


def status(redis: Redis, settings: Settings, subscription_id: str) -> SubscriptionStatus:
    """A subscription and the state of its circuit breaker."""
    view = get(redis, subscription_id)
    state = circuit.status(redis, circuit_name(subscription_id), cooloff=settings.webhook_circuit_cooloff_seconds)

    def stamp(seconds: float | None) -> datetime | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

    return SubscriptionStatus(
        **view.model_dump(),
        circuit=CircuitView(
            state=state.state, failures=state.failures, opened_at=stamp(state.opened_at), retry_at=stamp(state.retry_at)
        ),
    )


def list_all(redis: Redis) -> list[Subscription]:
    """Every subscription, oldest first."""
    return [stored.view() for stored in _all(redis)]


def _all(redis: Redis) -> list[StoredSubscription]:
    found = [StoredSubscription.model_validate_json(raw) for raw in redis.hvals(SUBSCRIPTIONS)]
    return sorted(found, key=lambda s: s.created_at)


def _mutate(
    redis: Redis, subscription_id: str, change: Callable[[StoredSubscription], StoredSubscription]
) -> StoredSubscription:
    """Read-modify-write one subscription, retried if another process changed it meanwhile."""
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(SUBSCRIPTIONS)
                raw = pipe.hget(SUBSCRIPTIONS, subscription_id)
                if raw is None:
                    raise NotFound(f"no webhook subscription {subscription_id!r}")
                updated = change(StoredSubscription.model_validate_json(raw))
                pipe.multi()
                pipe.hset(SUBSCRIPTIONS, subscription_id, updated.model_dump_json())
                pipe.execute()
                return updated
            except WatchError:
                continue


def update(redis: Redis, settings: Settings, subscription_id: str, patch: SubscriptionPatch) -> Subscription:
    changes = patch.model_dump(exclude_unset=True)
    if "url" in changes:
        _check_url(settings, changes["url"])
    if changes.get("enabled"):
        changes["disabled_reason"] = None
        redis.hdel(FAILING_SINCE, subscription_id)  # a fresh start: the failure clock restarts
    elif changes.get("enabled") is False:
        changes["disabled_reason"] = "disabled through the API"
    return _mutate(redis, subscription_id, lambda s: s.model_copy(update=changes)).view()


def delete(redis: Redis, subscription_id: str) -> None:
    if not redis.hdel(SUBSCRIPTIONS, subscription_id):
        raise NotFound(f"no webhook subscription {subscription_id!r}")
    redis.hdel(FAILING_SINCE, subscription_id)
    delivery_log.forget(redis, subscription_id)


def rotate_secret(redis: Redis, settings: Settings, subscription_id: str) -> tuple[str, datetime]:
    """A new secret signs from now on; the current one keeps signing until the returned expiry."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=settings.webhook_secret_grace_seconds)
    secret = new_secret()

    def rotate(stored: StoredSubscription) -> StoredSubscription:
        kept = [
            s.model_copy(update={"expires_at": min(s.expires_at or expires, expires)})
            for s in stored.secrets
            if s.expires_at is None or s.expires_at > now
        ]
        fresh = StoredSecret(encrypted=encryption.encrypt(settings, secret), created_at=now)
        return stored.model_copy(update={"secrets": [fresh, *kept]})

    _mutate(redis, subscription_id, rotate)
    return secret, expires


def reencrypt_all(redis: Redis, settings: Settings) -> int:
    """Encrypt every stored secret again with the first of TICKWATCH_SECRET_KEYS (`tickwatch secrets rotate`);
    returns how many subscriptions were rewritten."""

    def again(stored: StoredSubscription) -> StoredSubscription:
        fresh = [
            s.model_copy(update={"encrypted": encryption.reencrypt(settings, s.encrypted)}) for s in stored.secrets
        ]
        return stored.model_copy(update={"secrets": fresh})

    subscriptions = _all(redis)
    for stored in subscriptions:
        _mutate(redis, stored.id, again)
    return len(subscriptions)


def signing_secrets(settings: Settings, stored: StoredSubscription, now: datetime) -> list[str]:
    """The secrets that sign now: the newest, plus older ones still in their grace period."""
    return [
        encryption.decrypt(settings, s.encrypted) for s in stored.secrets if s.expires_at is None or s.expires_at > now
    ]


def disable(redis: Redis, subscription_id: str, reason: str) -> bool:
    """Disable (once); returns False if it was already disabled or is gone."""
    try:
        before = load(redis, subscription_id)
    except NotFound:
        return False
    if not before.enabled:
        return False
    _mutate(redis, subscription_id, lambda s: s.model_copy(update={"enabled": False, "disabled_reason": reason}))
    return True


def failing_for(redis: Redis, subscription_id: str, now: datetime) -> float:
    """Note a failed attempt; returns for how many seconds the endpoint has been failing without a success."""
    pipe = redis.pipeline(transaction=False)
    pipe.hsetnx(FAILING_SINCE, subscription_id, now.timestamp())
    pipe.hget(FAILING_SINCE, subscription_id)
    since = pipe.execute()[1]
    return now.timestamp() - float(since) if since else 0.0


def note_success(redis: Redis | Pipeline, subscription_id: str) -> None:
    """The endpoint works: its failure clock stops."""
    redis.hdel(FAILING_SINCE, subscription_id)


# --- dispatch and the delivery log ------------------------------------------------------------------------


def dispatch(redis: Redis, settings: Settings, event: dict[str, Any]) -> int:
    """Queue one delivery of `event` (the alert envelope, as JSON-ready dict) per enabled subscription that
    wants its type and symbol; returns how many were queued. Dispatching the same event again queues
    nothing new (delivery ids derive from subscription and event id). Events without a symbol
    (`digest.daily`) go to every subscription of their type.
    """
    data = event.get("data")
    symbol = data.get("symbol") if isinstance(data, dict) else None
    wanted = [s for s in _all(redis) if s.wants(event["type"], symbol)]
    return _queue(redis, settings, event, [s.id for s in wanted])


def _queue(redis: Redis, settings: Settings, event: dict[str, Any], subscription_ids: list[str]) -> int:
    if not subscription_ids:
        return 0
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    now = datetime.now(UTC)
    records = [
        DeliveryRecord(
            id=delivery_log.delivery_id(sub, event["id"]),
            subscription_id=sub,
            event_type=event["type"],
            event_id=event["id"],
            created_at=now,
            next_attempt_at=now,
            body=body,
        )
        for sub in subscription_ids
    ]
    created, jobs = delivery_log.create(redis, records)
    delivery_log.enqueue(settings, jobs)
    return len(created)


def send_test(redis: Redis, settings: Settings, subscription_id: str) -> Delivery:
    """Queue a `webhook.test` event to this subscription only (whatever its filters), e.g. to check a receiver."""
    stored = load(redis, subscription_id)
    if not stored.enabled:
        raise Conflict(f"subscription {subscription_id} is disabled ({stored.disabled_reason}); enable it first")
    now = datetime.now(UTC)
    event_id = f"msg_test_{uuid.uuid4().hex[:16]}"
    event = {
        "type": TEST_EVENT,
        "id": event_id,
        "timestamp": iso(now),
        "data": {"subscription_id": subscription_id, "message": "a test event from Tickwatch"},
    }
    _queue(redis, settings, event, [subscription_id])
    record = delivery_log.load(redis, delivery_log.delivery_id(subscription_id, event_id))
    assert record is not None
    return record.view()


def deliveries(
    redis: Redis,
    subscription_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    status: delivery_log.Status | None = None,
) -> tuple[list[Delivery], str | None]:
    """A page of the delivery log, newest first, and the next page's cursor (ValueError for a bad cursor)."""
    load(redis, subscription_id)  # NotFound for an unknown subscription, rather than an empty page
    records, next_cursor = delivery_log.page(redis, subscription_id, limit=limit, cursor=cursor, status=status)
    return [record.view() for record in records], next_cursor


def replay(redis: Redis, settings: Settings, subscription_id: str, delivery: str) -> Delivery:
    """Send a finished delivery again, now, with the same body and webhook-id, on a fresh retry schedule."""
    load(redis, subscription_id)
    record = delivery_log.load(redis, delivery)
    if record is None or record.subscription_id != subscription_id:
        raise NotFound(f"no delivery {delivery!r} for subscription {subscription_id}")
    if record.status == "pending":
        raise Conflict(
            f"delivery {delivery} is still being attempted (next at "
            f"{record.next_attempt_at and iso(record.next_attempt_at)})"
        )
    return _restart(redis, settings, [record])[0].view()


def recover(redis: Redis, settings: Settings, subscription_id: str, since: datetime) -> int:
    """Replay every failed delivery created since `since`; returns how many."""
    load(redis, subscription_id)
    failed = [r for r in delivery_log.created_since(redis, subscription_id, since) if r.status == "failed"]
    return len(_restart(redis, settings, failed))


def _restart(redis: Redis, settings: Settings, records: list[DeliveryRecord]) -> list[DeliveryRecord]:
    now = datetime.now(UTC)
    restarted = [
        r.model_copy(update={"status": "pending", "seq": r.seq + 1, "step": 0, "next_attempt_at": now}) for r in records
    ]
    for record in restarted:
        delivery_log.save(redis, record)
    delivery_log.enqueue(settings, [record.job for record in restarted])
    return restarted
