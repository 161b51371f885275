"""The daily digest posted once per (day, channel) and edited on every re-run; the `digest.daily` event to
webhook subscribers and Kafka.

Where a posted digest is: the `<prefix>-digests` index, one document per (day, channel) with the message
ts, so a retry or re-run edits the message (`chat.update`) instead of posting again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.error import URLError

import orjson
from elasticsearch import ConflictError, Elasticsearch, NotFoundError
from redis import Redis
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from pipeline import store
from pipeline.context import Context
from pipeline.digest.message import chart, chart_title, event, message
from pipeline.digest.summary import Digest
from pipeline.ingest.topics import make_producer
from pipeline.schema import iso
from pipeline.settings import Settings
from pipeline.webhooks import subscriptions

log = logging.getLogger(__name__)

CLAIM_SECONDS = 600  # a first post not recorded within this is from a run that died (see _claim)


@dataclass(frozen=True)
class Posted:
    channel: str  # the channel id Slack answered with
    ts: str
    updated: bool  # True: an earlier message of the same day was edited
    file_id: str | None


def digests_index(indices: store.Indices) -> str:
    return f"{indices.prefix}-digests"


_DIGEST_PROPERTIES: dict[str, Any] = {
    "day": {"type": "keyword"},
    "channel": {"type": "keyword"},
    "channel_id": {"type": "keyword"},
    "ts": {"type": "keyword"},
    "claimed_at": {"type": "date"},
    "posted_at": {"type": "date"},
    "updated_at": {"type": "date"},
    "runs": {"type": "integer"},
    "file_ids": {"type": "keyword"},
    "summary": {"type": "object", "enabled": False},
}


def ensure_digests_index(es: Elasticsearch, indices: store.Indices) -> str:
    """Create `<prefix>-digests` if missing, else add the fields newer code writes (the mapping is strict);
    returns its name."""
    name = digests_index(indices)
    if not es.indices.exists(index=name):
        es.indices.create(
            index=name,
            settings={"number_of_shards": 1, "number_of_replicas": 0},
            mappings={"dynamic": "strict", "properties": _DIGEST_PROPERTIES},
        )
    else:
        es.indices.put_mapping(index=name, properties=_DIGEST_PROPERTIES)
    return name


def posted_message(es: Elasticsearch, indices: store.Indices, day: date, channel: str) -> dict[str, Any] | None:
    """The record of the digest already posted for (day, channel), if any."""
    try:
        found = es.get(index=digests_index(indices), id=f"{day.isoformat()}|{channel}")["_source"]
    except NotFoundError:
        return None
    return found if found.get("ts") else None  # a claim: being posted


class DigestBusy(RuntimeError):
    """Another run is posting the same day's digest to the same channel right now; retry in a few minutes."""


def _claim(es: Elasticsearch, index: str, doc_id: str, day: date, channel: str) -> dict[str, Any] | None:
    """The posted record to edit, or None once this run holds the right to post first.

    The right is a document created only if absent (Elasticsearch's `create`), so of two concurrent first
    runs (a DAG run and `tickwatch digest --post`, say) one posts and the other gets DigestBusy. A claim
    older than CLAIM_SECONDS is from a run that died before recording its post; it is taken over (compare
    and swap on the document's sequence number, so by one run only).
    """
    now = datetime.now(UTC)
    claim = {"day": day.isoformat(), "channel": channel, "claimed_at": iso(now)}
    try:
        es.create(index=index, id=doc_id, document=claim, refresh="wait_for")
        return None
    except ConflictError:
        pass
    held = es.get(index=index, id=doc_id)
    if held["_source"].get("ts"):
        return held["_source"]
    since = datetime.fromisoformat(held["_source"]["claimed_at"].replace("Z", "+00:00"))
    if now - since < timedelta(seconds=CLAIM_SECONDS):
        raise DigestBusy(
            f"another run has been posting the {day} digest to {channel} since {iso(since)}; try again in a few minutes"
        )
    try:
        es.index(
            index=index,
            id=doc_id,
            document=claim,
            if_seq_no=held["_seq_no"],
            if_primary_term=held["_primary_term"],
            refresh="wait_for",
        )
    except ConflictError:
        raise DigestBusy(f"another run took over posting the {day} digest to {channel}") from None
    log.warning("taking over a stale claim on the %s digest in %s from %s", day, channel, iso(since))
    return None


def post(
    digest: Digest,
    content: dict[str, Any],
    settings: Settings,
    es: Elasticsearch,
    indices: store.Indices,
    client: WebClient,
    *,
    channel: str | None = None,
    png: bytes | None = None,
) -> Posted:
    """Post `content` (from `message`), or edit the digest already posted for its day in that channel; then
    upload the chart into the message's thread. The (day, channel) -> ts record is written right after the
    first post, so only a crash between Slack's answer and that write (then a claim goes stale, see _claim)
    could lead to a second message. DigestBusy: another run is posting it now."""
    channel = channel or settings.digest_channel or settings.slack_channel
    index = ensure_digests_index(es, indices)
    doc_id = f"{digest.day.isoformat()}|{channel}"
    known = _claim(es, index, doc_id, digest.day, channel)
    options: dict[str, Any] = {
        "unfurl_links": False,
        "metadata": {"event_type": "digest.daily", "event_payload": {"day": digest.day.isoformat()}},
    }
    now = iso(datetime.now(UTC))
    if known:
        client.chat_update(channel=known["channel_id"], ts=known["ts"], **content, **options)
        record = {**known, "updated_at": now, "runs": known.get("runs", 1) + 1}
    else:
        try:
            answer = client.chat_postMessage(channel=channel, **content, **options)
        except (SlackApiError, URLError):
            # Slack refused it, or the request never got out: nothing was posted, so the next run may post at
            # once instead of waiting CLAIM_SECONDS. (A timeout waiting for the answer keeps the claim: the
            # message may exist.)
            es.delete(index=index, id=doc_id, refresh="wait_for")
            raise
        record = {
            "day": digest.day.isoformat(),
            "channel": channel,
            "channel_id": answer["channel"],
            "ts": answer["ts"],
            "posted_at": now,
            "updated_at": now,
            "runs": 1,
            "file_ids": [],
        }
    record["summary"] = digest.model_dump(mode="json", exclude={"paths"})
    es.index(index=index, id=doc_id, document=record, refresh="wait_for")
    file_id = None
    if png is not None:
        upload = client.files_upload_v2(
            channel=record["channel_id"],
            thread_ts=record["ts"],
            file=png,
            filename=f"digest-{digest.day.isoformat()}.png",
            title=chart_title(digest),
        )
        file_id = upload["file"]["id"]
        es.update(index=index, id=doc_id, doc={"file_ids": [*record["file_ids"], file_id]}, refresh="wait_for")
    return Posted(channel=record["channel_id"], ts=record["ts"], updated=bool(known), file_id=file_id)


def deliver(digest: Digest, settings: Settings, *, channel: str | None = None) -> Posted:
    """Everything `tickwatch digest --post` does in one call (the DAG runs the same steps as separate tasks)."""
    ctx = Context(settings)
    return post(
        digest,
        message(digest),
        settings,
        ctx.es,
        ctx.indices,
        ctx.slack(),
        channel=channel,
        png=chart(digest),
    )


def notify(digest: Digest, settings: Settings, redis: Redis) -> int:
    """The `digest.daily` event to webhook subscribers of that type (returns how many deliveries were queued;
    a re-run queues none, delivery ids derive from the event id) and onto the Kafka `alerts` topic (key
    `digest`), in the envelope every alert event has."""
    envelope = event(digest)
    queued = subscriptions.dispatch(redis, settings, envelope)
    producer = make_producer(settings, linger_ms=0)
    try:
        producer.send(settings.alerts_topic, key=b"digest", value=orjson.dumps(envelope)).get(timeout=10)
    finally:
        producer.close()
    return queued
