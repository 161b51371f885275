"""An alert's state in Elasticsearch, for whoever renders or changes it: the pipeline's Slack notifier and
the bot's buttons alike.

- `alert_context(es, indices, anomaly)`: the "why" of a message (sparkline, volume vs usual, recent alerts).
- `acknowledge(es, indices, anomaly_id, actor_name)`: idempotent; a second acknowledgement keeps the first.
- `record_slack_ref(es, indices, anomaly, ref)`: where the anomaly's Slack message is.
- `latest(stored, seen)`: the most advanced of two views of one anomaly (ES may lag the pipeline).

Render with `pipeline.messages.alert_message(anomaly, alert_context(...))`. Writes are partial updates
(no painless on the loopback Elasticsearch), so detection's fields and people's fields never overwrite
each other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import ConflictError, Elasticsearch, NotFoundError

from pipeline import history
from pipeline.alerting.messages import AlertContext
from pipeline.schema import AckReason, Anomaly, SlackRef
from pipeline.store import HUMAN_FIELDS, UPDATE_RETRIES, Indices

SPARKLINE_POINTS = 24
RECENT = timedelta(hours=24)
_ACK_ATTEMPTS = 5

__all__ = ["AlertContext", "acknowledge", "alert_context", "latest", "record_slack_ref", "slack_ref_action"]


def alert_context(es: Elasticsearch, indices: Indices, anomaly: Anomaly) -> AlertContext:
    """The stored ticks and anomalies around `anomaly`: the window up to its peak as a sparkline, the window's
    volume against the symbol's usual (7 days before the move), and its alerts in the 24 h before it."""
    window = timedelta(seconds=anomaly.window_seconds)
    summary = history.window_summary(
        es, indices, anomaly.symbol, window, end=anomaly.peak_timestamp, points=SPARKLINE_POINTS
    )
    usual = history.usual_volume(
        es, indices, anomaly.symbol, anomaly.window_seconds, before=anomaly.reference_timestamp
    )
    earlier = history.count_anomalies(
        es, indices, anomaly.symbol, anomaly.timestamp - RECENT, until=anomaly.timestamp - timedelta(milliseconds=1)
    )
    return AlertContext(
        sparkline=summary.sparkline if summary else [],
        window_volume=summary.volume if summary else None,
        usual_volume=usual,
        earlier_alerts_24h=earlier,
    )


def acknowledge(
    es: Elasticsearch,
    indices: Indices,
    anomaly_id: str,
    actor_name: str,
    *,
    at: datetime | None = None,
    reason: AckReason | None = None,
) -> Anomaly:
    """Mark the anomaly acknowledged by `actor_name` (a Slack user id renders as a mention), with the `reason`
    when given, and return it.

    Idempotent: if someone already acknowledged it, nothing changes (but a reason, if none was given) and the
    first acknowledgement is returned. A resolved anomaly stays `resolved` (it records who acknowledged it).
    Compare-and-set on the document's sequence number, so two people clicking at once give one
    acknowledgement. Raises LookupError for an unknown id.
    """
    for _ in range(_ACK_ATTEMPTS):
        try:
            found = es.get(index=indices.anomalies, id=anomaly_id)
        except NotFoundError:
            raise LookupError(f"no anomaly {anomaly_id!r}") from None
        anomaly = Anomaly.model_validate(found["_source"])
        change: dict[str, Any] = {"ack_reason": reason.value} if reason else {}
        if anomaly.acknowledged_by is None:
            change |= {
                "status": "resolved" if anomaly.status == "resolved" else "acknowledged",
                "acknowledged_by": actor_name,
                "acknowledged_at": (at or datetime.now(UTC)).isoformat(),
            }
        elif anomaly.ack_reason is not None or not change:
            return anomaly
        try:
            es.update(
                index=indices.anomalies,
                id=anomaly_id,
                doc=change,
                if_seq_no=found["_seq_no"],
                if_primary_term=found["_primary_term"],
                refresh="wait_for",
            )
        except ConflictError:
            continue  # someone (detection, another click) wrote meanwhile: read again
        return Anomaly.model_validate({**found["_source"], **change})
    raise RuntimeError(f"anomaly {anomaly_id} kept changing; acknowledgement not recorded, try again")


def slack_ref_action(indices: Indices, anomaly: Anomaly, ref: SlackRef) -> dict[str, Any]:
    """The bulk action recording `ref` on the anomaly; creates the document (the whole anomaly) if detection
    has not written it yet, since alerts go out before storage."""
    slack = ref.model_dump()
    return {
        "_op_type": "update",
        "_index": indices.anomalies,
        "_id": anomaly.id,
        "doc": {"slack": slack},
        "upsert": {**anomaly.model_dump(mode="json"), "slack": slack},
        "retry_on_conflict": UPDATE_RETRIES,
    }


def record_slack_ref(es: Elasticsearch, indices: Indices, anomaly: Anomaly, ref: SlackRef) -> None:
    """Store where the anomaly's Slack message is (`slack.channel`, `slack.ts`), leaving every other field."""
    action = slack_ref_action(indices, anomaly, ref)
    es.update(
        index=action["_index"],
        id=action["_id"],
        doc=action["doc"],
        upsert=action["upsert"],
        retry_on_conflict=UPDATE_RETRIES,
    )


def latest(stored: Anomaly | None, seen: Anomaly) -> Anomaly:
    """One anomaly's current state from the stored document and a newer view the pipeline holds.

    Detection's fields come from whichever is further along (resolved beats open, then the deeper peak);
    people's fields (acknowledgement, Slack ref) from the stored document; resolved wins over acknowledged.
    """
    if stored is None:
        return seen

    def progress(a: Anomaly) -> tuple[bool, float]:
        return a.resolved_at is not None, abs(a.peak_change_pct)

    base = seen if progress(seen) >= progress(stored) else stored
    human = stored.model_dump(include=set(HUMAN_FIELDS))
    if base.resolved_at is not None:
        human["status"] = "resolved"
    elif human["status"] == "resolved":  # a stale view cannot re-open a stored resolution
        return stored
    return Anomaly.model_validate({**base.model_dump(), **human})
