"""Webhook subscriptions (admin tokens only): thin views over pipeline.subscriptions.

Create, list, change and delete endpoints; rotate a secret; send a test event; read the delivery log;
replay one delivery or recover everything that failed since a time. Secrets appear exactly twice in the
API's life: in the answer to the creation and to a rotation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from api.auth import Admin
from api.deps import services
from api.errors import Problem, problem_responses
from api.views import invalid_as_problem, next_link
from pipeline.context import Context
from pipeline.schema import AlertEvent, FeedEvent, to_utc
from pipeline.webhooks import subscriptions
from pipeline.webhooks.delivery_log import Delivery, Status
from pipeline.webhooks.ssrf import UnsafeURL
from pipeline.webhooks.subscriptions import Subscription, SubscriptionPatch, SubscriptionSpec

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=problem_responses(401, 403, 422, 503))
Svc = Annotated[Context, Depends(services)]
FOUND = problem_responses(404)
DeliveryId = Annotated[str, PathParam(description="an id from the delivery log")]
WebhookId = Annotated[str, PathParam(description="a subscription's id, as created or listed", examples=["sub_…"])]


class CreatedWebhook(Subscription):
    secret: str = Field(description="whsec_… signing secret: shown only now; verify deliveries with it")


class WebhookList(BaseModel):
    items: list[Subscription]


class RotatedSecret(BaseModel):
    secret: str = Field(description="the new whsec_… secret: shown only now")
    previous_valid_until: datetime = Field(description="until then deliveries are signed with both secrets")


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page")
    next: str | None = Field(None, description="the next page's path and query")


class Recovered(BaseModel):
    resent: int = Field(description="failed deliveries queued again")


# --- what subscribers receive (the OpenAPI document's `webhooks` section) ------------------------------------

events = APIRouter()


class DigestEvent(BaseModel):
    type: Literal["digest.daily"] = "digest.daily"
    id: str = Field(
        description="msg_digest_<day>: one per day, the same on a re-run", examples=["msg_digest_2026-11-24"]
    )
    timestamp: datetime
    data: dict[str, Any] = Field(
        description="the day's summary: movers, drawdowns, anomalies per rule, mutes, data "
        "health (the JSON the digest posts, see docs/digest.md)"
    )


class FeedHealthEvent(BaseModel):
    type: Literal["feed.stale", "feed.recovered"]
    id: str = Field(
        description="msg_feed_<symbol>_<last tick ms>, and _recovered for its recovery",
        examples=["msg_feed_BTC-USD_1764945060000"],
    )
    timestamp: datetime
    data: FeedEvent


ANSWERS: dict[int | str, dict[str, Any]] = {
    204: {"description": "received: any 2xx will do, within 15 s"},
    410: {"description": "gone: the subscription is disabled, nothing more is sent"},
}
WebhookIdHeader = Annotated[str, Header(description="the event id: the same on every retry and replay")]
TimestampHeader = Annotated[str, Header(description="this attempt's Unix time; refuse ones more than 5 minutes off")]
SignatureHeader = Annotated[
    str,
    Header(
        description="`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per "
        "current secret, space-separated (two during a rotation)"
    ),
]


@events.post("anomaly.detected", status_code=204, responses=ANSWERS, summary="An episode opened: the anomaly as stored")
def anomaly_detected(
    event: AlertEvent,
    webhook_id: WebhookIdHeader,
    webhook_timestamp: TimestampHeader,
    webhook_signature: SignatureHeader,
) -> None:
    """Sent to subscriptions of `anomaly.detected` (and of its symbol, when they name symbols). Verify it with
    any Standard Webhooks library and your `whsec_…` secret; answer 2xx within 15 s. Anything else is retried
    (3xx included: redirects are not followed); 410 disables the subscription."""


@events.post(
    "anomaly.resolved",
    status_code=204,
    responses=ANSWERS,
    summary="An episode ended: the condition stayed clear for the cooldown",
)
def anomaly_resolved(
    event: AlertEvent,
    webhook_id: WebhookIdHeader,
    webhook_timestamp: TimestampHeader,
    webhook_signature: SignatureHeader,
) -> None:
    """The same anomaly as its `anomaly.detected`, with `status: resolved` and `resolved_at`; the id is
    `msg_<anomaly id>_resolved`."""


@events.post("digest.daily", status_code=204, responses=ANSWERS, summary="The day's summary, once the digest ran")
def digest_daily(
    event: DigestEvent,
    webhook_id: WebhookIdHeader,
    webhook_timestamp: TimestampHeader,
    webhook_signature: SignatureHeader,
) -> None:
    """Sent to every subscription of `digest.daily` (symbol filters do not apply)."""


@events.post(
    "feed.stale", status_code=204, responses=ANSWERS, summary="A symbol stopped ticking while its market is open"
)
def feed_stale(
    event: FeedHealthEvent,
    webhook_id: WebhookIdHeader,
    webhook_timestamp: TimestampHeader,
    webhook_signature: SignatureHeader,
) -> None:
    """Sent when a symbol has been silent for longer than `TICKWATCH_STALE_FACTOR` times its usual gap (and at
    least `TICKWATCH_STALE_MIN_SECONDS`) while its market is open (docs/feeds.md); symbol filters apply."""


@events.post("feed.recovered", status_code=204, responses=ANSWERS, summary="A stale symbol ticks again")
def feed_recovered(
    event: FeedHealthEvent,
    webhook_id: WebhookIdHeader,
    webhook_timestamp: TimestampHeader,
    webhook_signature: SignatureHeader,
) -> None:
    """Its `feed.stale`, with `recovered_at` and `silent_seconds`; the id is the stale event's plus `_recovered`."""


@contextmanager
def _as_problems() -> Iterator[None]:
    """The service's errors as problem details: unknown ids 404, state conflicts 409, refused URLs 422."""
    try:
        yield
    except subscriptions.NotFound as error:
        raise Problem(404, "not-found", str(error)) from None
    except subscriptions.Conflict as error:
        raise Problem(409, "conflict", str(error)) from None
    except UnsafeURL as error:
        raise Problem(
            422, "unsafe-url", f"body.url: {error}", errors=[{"field": "body.url", "message": str(error)}]
        ) from None
    except ValueError as error:
        raise Problem(422, "validation", str(error)) from None


@router.post(
    "",
    response_model=CreatedWebhook,
    status_code=201,
    summary="Subscribe a URL to events; the answer holds its signing secret, shown only this once",
)
def create_webhook(_: Admin, svc: Svc, spec: SubscriptionSpec) -> CreatedWebhook:
    with _as_problems():
        created, secret = subscriptions.create(svc.redis, svc.settings, spec)
    return CreatedWebhook(**created.model_dump(), secret=secret)


@router.get("", response_model=WebhookList, summary="Every subscription, oldest first")
def list_webhooks(_: Admin, svc: Svc) -> WebhookList:
    return WebhookList(items=subscriptions.list_all(svc.redis))


@router.get(
    "/{webhook_id}",
    response_model=subscriptions.SubscriptionStatus,
    responses=FOUND,
    summary="One subscription, with its circuit breaker",
)
def get_webhook(_: Admin, svc: Svc, webhook_id: WebhookId) -> subscriptions.SubscriptionStatus:
    with _as_problems():
        return subscriptions.status(svc.redis, svc.settings, webhook_id)


@router.patch(
    "/{webhook_id}",
    response_model=Subscription,
    responses=FOUND,
    summary='Change URL, events, symbols or description; {"enabled": true} re-enables a disabled one',
)
def patch_webhook(_: Admin, svc: Svc, webhook_id: WebhookId, patch: SubscriptionPatch) -> Subscription:
    with _as_problems():
        return subscriptions.update(svc.redis, svc.settings, webhook_id, patch)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=FOUND,
    summary="Delete a subscription and its delivery log",
)
def delete_webhook(_: Admin, svc: Svc, webhook_id: WebhookId) -> Response:
    with _as_problems():
        subscriptions.delete(svc.redis, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=RotatedSecret,
    responses=FOUND,
    summary="A new signing secret; the old one keeps signing during the grace period",
)
def rotate_secret(_: Admin, svc: Svc, webhook_id: WebhookId) -> RotatedSecret:
    with _as_problems():
        secret, until = subscriptions.rotate_secret(svc.redis, svc.settings, webhook_id)
    return RotatedSecret(secret=secret, previous_valid_until=until)


@router.post(
    "/{webhook_id}/test",
    response_model=Delivery,
    status_code=202,
    responses={**FOUND, **problem_responses(409)},
    summary="Send a `webhook.test` event to this subscription now",
)
def test_webhook(_: Admin, svc: Svc, webhook_id: WebhookId) -> Delivery:
    with _as_problems():
        return subscriptions.send_test(svc.redis, svc.settings, webhook_id)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=FOUND,
    summary="The delivery log, newest first: event, status, attempts, response code, latency, next attempt",
)
def list_deliveries(
    _: Admin,
    svc: Svc,
    webhook_id: WebhookId,
    status: Annotated[Status | None, Query(description="only deliveries in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="deliveries per page")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DeliveryPage:
    with _as_problems(), invalid_as_problem("query.cursor"):
        items, next_cursor = subscriptions.deliveries(svc.redis, webhook_id, limit=limit, cursor=cursor, status=status)
    return DeliveryPage(
        items=items,
        next_cursor=next_cursor,
        next=next_link(f"/v1/webhooks/{webhook_id}/deliveries", next_cursor, status=status, limit=limit),
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    response_model=Delivery,
    status_code=202,
    responses={**FOUND, **problem_responses(409)},
    summary="Send a finished delivery again (same body and webhook-id), on a fresh retry schedule",
)
def replay_delivery(_: Admin, svc: Svc, webhook_id: WebhookId, delivery_id: DeliveryId) -> Delivery:
    with _as_problems():
        return subscriptions.replay(svc.redis, svc.settings, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/recover",
    response_model=Recovered,
    status_code=202,
    responses=FOUND,
    summary="Send again every delivery that failed since a time (e.g. after an outage)",
)
def recover(
    _: Admin,
    svc: Svc,
    webhook_id: WebhookId,
    since: Annotated[datetime, Query(description="ISO-8601; deliveries created from then on")],
) -> Recovered:
    with _as_problems():
        return Recovered(resent=subscriptions.recover(svc.redis, svc.settings, webhook_id, to_utc(since)))
