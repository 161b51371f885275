"""Alerts in Slack: one message per episode, edited in place; storms grouped in one message.

- `anomaly.detected`: posts the alert (Block Kit from pipeline.messages) and stores its `slack.channel` /
  `slack.ts` on the anomaly in Elasticsearch; in a storm (pipeline.storms) the alert joins the storm's grouped
  message instead.
- `anomaly.resolved`: edits that message at once (recovered, after how long).
- a new peak (`anomaly_changed`, from the tick workers): edits it at most once per
  `slack_edit_interval_seconds` (storms: `storm_edit_interval_seconds`). A Redis key per message is the
  throttle; a change that finds it taken queues one follow-up `slack_refresh` task for when it expires, and
  that task renders the newest state, so the last change is never lost.
- a message Slack no longer has (`message_not_found`, `channel_not_found`) is posted anew and the new ref
  stored.

Every render takes a Redis lock per message, so concurrent deliveries (the alerts worker runs threads)
never post twice; the message shows the newest of the stored document and the pipeline's own view.
`AlertMessages` is the service: the Slack channel (pipeline.alerting.channels.slack) posts through it, and
the bot, after a button changed an anomaly, calls `changed(anomaly_id)` (or `render_storm(storm_id)`) to
have the message edited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from elasticsearch import ApiError, TransportError
from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from pipeline import keys, logs, store
from pipeline.alerting import anomalies, slack_errors, storms
from pipeline.alerting.messages import AlertContext, alert_message, storm_message
from pipeline.context import Context, slack_client
from pipeline.schema import AlertEvent, Anomaly, SlackRef
from pipeline.settings import Settings
from pipeline.worker import later
from pipeline.worker.app import SLACK_REFRESH

logger = logging.getLogger(__name__)
Kind = Literal["alert", "storm"]
Enqueue = Callable[[Kind, str, float], None]  # (kind, key, delay in seconds): run `refresh` later
GONE = {"message_not_found", "channel_not_found"}
SEEN_TTL_SECONDS = storms.TTL_SECONDS
LOCK_SECONDS = 30  # longer than one render (Slack calls time out after 10 s, and are not retried inside it)
LOCK_WAIT_SECONDS = 15


def remember(redis: Redis, anomaly: Anomaly) -> Anomaly:
    """Keep the pipeline's newest view of an anomaly (its ES document is written after alerts go out)."""
    seen_key = keys.slack_message("seen", "alert", anomaly.id)
    raw = redis.get(seen_key)
    newest = anomalies.latest(Anomaly.model_validate_json(raw), anomaly) if raw else anomaly
    redis.set(seen_key, newest.model_dump_json(), ex=SEEN_TTL_SECONDS)
    return newest


def anomaly_changed(redis: Redis, settings: Settings, anomaly: Anomaly, enqueue: Enqueue) -> None:
    """A new peak: have the anomaly's message (or its storm's) edited soon, never inline (the tick workers
    call this and must not wait on Slack), at most once per interval, the newest state always shown."""
    newest = remember(redis, anomaly)
    if storm := storms.storm_of(redis, anomaly.id):
        storms.put_member(redis, storm, newest)
        _schedule(redis, "storm", storm, enqueue)
    else:
        _schedule(redis, "alert", anomaly.id, enqueue)


def _schedule(redis: Redis, kind: Kind, key: str, enqueue: Enqueue) -> None:
    """Queue one refresh for when the message's throttle expires, unless one is already pending."""
    if redis.set(keys.slack_message("pending", kind, key), 1, nx=True, ex=LOCK_SECONDS * 5):
        enqueue(kind, key, max(0, redis.pttl(keys.slack_message("throttle", kind, key))) / 1000)


def refresh_later(redis: Redis, settings: Settings) -> Enqueue:
    """Schedule the `slack_refresh` task (on the alerts queue) `delay` seconds from now, in Redis
    (pipeline.worker.later), so a worker that dies meanwhile loses no edit."""

    def enqueue(kind: Kind, key: str, delay: float) -> None:
        later.send_later(redis, SLACK_REFRESH, kind, key, queue=settings.alerts_queue, at=time.time() + delay)

    return enqueue


class AlertMessages:
    """Each alert's (and storm's) one Slack message: posted once, then edited as its anomaly changes."""

    def __init__(self, ctx: Context, *, client: WebClient | None = None, enqueue: Enqueue | None = None) -> None:
        self.settings = ctx.settings
        # Deliveries must not wait inside a call (a 429's Retry-After is kept by the delivery's own schedule).
        self.client = client or slack_client(ctx.settings, retries=False)
        self.redis = ctx.redis
        self.es = ctx.es
        self.indices = ctx.indices
        self.channel = ctx.settings.slack_channel
        self.enqueue = enqueue or refresh_later(ctx.redis, ctx.settings)
        self.intervals: dict[Kind, float] = {
            "alert": ctx.settings.slack_edit_interval_seconds,
            "storm": ctx.settings.storm_edit_interval_seconds,
        }

    # --- entry points ---------------------------------------------------------------------------------
    def post(self, event: AlertEvent) -> None:
        """Deliver a lifecycle event (the Slack channel's send); raises to have it retried."""
        anomaly = remember(self.redis, event.data)
        storm = storms.storm_of(self.redis, anomaly.id)
        if storm is None and event.type == "anomaly.detected":
            storm = storms.register(
                self.redis,
                self.channel,
                anomaly.id,
                threshold=self.settings.storm_threshold,
                window_seconds=self.settings.storm_window_seconds,
            )
        if storm is None:
            self.render_alert(anomaly.id)
            return
        storms.put_member(self.redis, storm, anomaly)
        if self.redis.set(keys.slack_message("throttle", "storm", storm), 1, nx=True, px=self._interval_ms("storm")):
            self.render_storm(storm)
        else:
            _schedule(self.redis, "storm", storm, self.enqueue)

    def refresh(self, kind: Kind, key: str) -> None:
        """The follow-up of a throttled change (pipeline.alerting.tasks.slack_refresh): render the newest state now."""
        self.redis.set(keys.slack_message("throttle", kind, key), 1, px=self._interval_ms(kind))
        self.redis.delete(
            keys.slack_message("pending", kind, key)
        )  # after the throttle: a change from now on queues anew
        if kind == "storm":
            self.render_storm(key)
        else:
            self.render_alert(key)

    def changed(self, anomaly_id: str) -> None:
        """Edit the message of an anomaly a person changed (acknowledged): its own, or its storm's."""
        if storm := storms.storm_of(self.redis, anomaly_id):
            self.render_storm(storm)
        else:
            self.render_alert(anomaly_id)

    # --- rendering --------------------------------------------------------------------------------------
    def render_alert(self, anomaly_id: str) -> SlackRef:
        """Post or edit the anomaly's message with its newest state; returns where it is."""
        with self.redis.lock(
            keys.slack_message("lock", "alert", anomaly_id), timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS
        ):
            anomaly = self._current(anomaly_id)
            text, blocks = alert_message(anomaly, self._context(anomaly))
            ref = self._post_or_update(
                anomaly.slack,
                text,
                blocks,
                {"event_type": "tickwatch_alert", "event_payload": {"anomaly_id": anomaly.id}},
            )
            if ref != anomaly.slack:
                anomalies.record_slack_ref(self.es, self.indices, anomaly, ref)
            self.redis.set(keys.slack_message("throttle", "alert", anomaly_id), 1, px=self._interval_ms("alert"))
            return ref

    def render_storm(self, storm_id: str) -> SlackRef:
        """Post or edit a storm's grouped message; records its ref on members that do not have it yet."""
        with self.redis.lock(
            keys.slack_message("lock", "storm", storm_id), timeout=LOCK_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS
        ):
            seen = storms.members(self.redis, storm_id)
            stored = self._stored([a.id for a in seen])
            current = [anomalies.latest(stored.get(a.id), a) for a in seen]
            text, blocks = storm_message(storms.view(self.redis, storm_id, current))
            old = storms.message_ref(self.redis, storm_id)
            ref = self._post_or_update(
                old, text, blocks, {"event_type": "tickwatch_storm", "event_payload": {"storm_id": storm_id}}
            )
            storms.set_message_ref(self.redis, storm_id, ref)
            missing = [a for a in current if a.slack != ref]
            if missing:
                store.write(self.es, [anomalies.slack_ref_action(self.indices, a, ref) for a in missing])
            return ref

    def _post_or_update(self, ref: SlackRef | None, text: str, blocks: list[Any], metadata: dict[str, Any]) -> SlackRef:
        if ref is not None:
            try:
                self._plain_if_refused(self.client.chat_update, blocks, channel=ref.channel, ts=ref.ts, text=text)
                return ref
            except SlackApiError as error:
                if error.response.get("error") not in GONE:
                    raise
        posted = self._plain_if_refused(
            self.client.chat_postMessage, blocks, channel=self.channel, text=text, metadata=metadata, unfurl_links=False
        )
        return SlackRef(channel=posted["channel"], ts=posted["ts"])

    @staticmethod
    def _plain_if_refused(call: Callable[..., SlackResponse], blocks: list[Any], **arguments: Any) -> SlackResponse:
        """Send with the blocks; if Slack refuses them (too long, invalid), send the text alone: a plainer
        message, never silence."""
        try:
            return call(blocks=blocks, **arguments)
        except SlackApiError as error:
            if slack_errors.code_of(error) not in slack_errors.TOO_RICH:
                raise
            logger.warning("Slack refused the message's blocks (%s); sent as plain text", slack_errors.code_of(error))
            return call(**arguments)

    def _context(self, anomaly: Anomaly) -> AlertContext:
        """The "why" from stored ticks; an alert goes out without it rather than wait for Elasticsearch (e.g.
        a tick index being created answers 503 for a moment), and a later edit fills it in. KeyError: today
        history.window_summary fails that way while no tick index exists yet (the alert beat tick storage)."""
        try:
            return anomalies.alert_context(self.es, self.indices, anomaly)
        except (ApiError, TransportError, KeyError) as error:
            logger.warning(
                "alert %s goes out without context: %s",
                anomaly.id,
                error,
                extra=logs.fields(anomaly_id=anomaly.id, symbol=anomaly.symbol),
            )
            return AlertContext()

    def _current(self, anomaly_id: str) -> Anomaly:
        raw = self.redis.get(keys.slack_message("seen", "alert", anomaly_id))
        stored = self._stored([anomaly_id]).get(anomaly_id)
        if raw is None:
            if stored is None:
                raise LookupError(f"no anomaly {anomaly_id!r} in Elasticsearch or Redis")
            return stored
        return anomalies.latest(stored, Anomaly.model_validate_json(raw))

    def _stored(self, ids: list[str]) -> dict[str, Anomaly]:
        if not ids:
            return {}
        docs = self.es.mget(index=self.indices.anomalies, ids=ids)["docs"]  # realtime: no refresh needed
        return {doc["_id"]: Anomaly.model_validate(doc["_source"]) for doc in docs if doc.get("found")}

    def _interval_ms(self, kind: Kind) -> int:
        return max(1, round(self.intervals[kind] * 1000))
