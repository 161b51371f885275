"""The alert lifecycle over the real Elasticsearch and Redis and a fake Slack Web API: partial writes keep
people's state, acknowledgements are idempotent, one message per episode edited in place, storms grouped."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from slack_sdk.errors import SlackApiError

from pipeline import store
from pipeline.alerting import anomalies, slack_errors, storms
from pipeline.alerting.slack_messages import AlertMessages, anomaly_changed
from pipeline.context import Context
from pipeline.schema import AlertEvent, Anomaly, SlackRef, StoredTick
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack

AT = datetime(2026, 11, 23, 14, 31, tzinfo=UTC)


def anomaly(key: str = "tsla-drop-1", symbol: str = "TSLA", **changes) -> Anomaly:
    fields = dict(
        id=key,
        symbol=symbol,
        rule="drop",
        timestamp=AT,
        price=94,
        reference_price=100,
        reference_timestamp=AT - timedelta(minutes=3),
        change_pct=-6,
        threshold_pct=5,
        window_seconds=300,
        peak_price=94,
        peak_change_pct=-6,
        peak_timestamp=AT,
        detected_at=AT,
    )
    return Anomaly(**{**fields, **changes})


@pytest.fixture
def es_indices(real_stack: Settings):
    """Own indices, with TSLA's ticks of the crash (every 10 s) so messages have a sparkline."""
    es = store.connect(real_stack)
    indices = store.Indices(f"tw-life-{uuid.uuid4().hex[:6]}")
    store.ensure_templates(es, indices)
    start = round(AT.timestamp() * 1000) - 300_000
    store.write(
        es,
        [
            store.tick_action(
                indices,
                StoredTick(
                    **{
                        "symbol": "TSLA",
                        "ts": start + k * 10_000,
                        "price": 100 - max(0, k - 12) * 0.4,
                        "volume": 100.0,
                        "published": None,
                        "late": False,
                        "partition": 0,
                        "offset": k,
                    }
                ),
            )
            for k in range(31)
        ],
    )
    es.indices.refresh(index=indices.ticks)
    yield es, indices
    for index in es.indices.get(index=f"{indices.prefix}-*"):
        es.indices.delete(index=index)


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def notifier(real_stack: Settings, fresh_redis: Redis, es_indices, slack: FakeSlack, queued: list, **overrides):
    _, indices = es_indices
    db = fresh_redis.connection_pool.connection_kwargs["db"]
    host, port = real_stack.redis_host_port
    settings = real_stack.model_copy(
        update={
            "slack_bot_token": "xoxb-test",
            "slack_api_url": slack.url,
            "slack_channel": "#alerts",
            "index_prefix": indices.prefix,
            "redis_url": f"redis://{host}:{port}/{db}",
            **overrides,
        }
    )
    return AlertMessages(Context(settings), enqueue=lambda kind, key, delay: queued.append((kind, key, delay)))


def test_detection_writes_keep_acknowledgement_and_slack_ref(es_indices):
    es, indices = es_indices
    store.write(es, [store.anomaly_action(indices, anomaly())])
    first = anomalies.acknowledge(es, indices, "tsla-drop-1", "U0ALICE01", at=AT)
    again = anomalies.acknowledge(es, indices, "tsla-drop-1", "U0BOB0001")
    assert first.status == again.status == "acknowledged" and again.acknowledged_by == "U0ALICE01"
    anomalies.record_slack_ref(es, indices, first, SlackRef(channel="C1", ts="1.0"))

    store.write(es, [store.anomaly_action(indices, anomaly(peak_price=90, peak_change_pct=-10))])  # deepened
    doc = Anomaly.model_validate(es.get(index=indices.anomalies, id="tsla-drop-1")["_source"])
    assert (doc.peak_change_pct, doc.status, doc.acknowledged_by, doc.slack) == (
        -10,
        "acknowledged",
        "U0ALICE01",
        SlackRef(channel="C1", ts="1.0"),
    )
    store.write(es, [store.anomaly_action(indices, anomaly(resolved_at=AT + timedelta(minutes=9), status="resolved"))])
    doc = Anomaly.model_validate(es.get(index=indices.anomalies, id="tsla-drop-1")["_source"])
    assert doc.status == "resolved" and doc.acknowledged_by == "U0ALICE01" and doc.slack is not None
    with pytest.raises(LookupError):
        anomalies.acknowledge(es, indices, "nope", "U0ALICE01")


def test_people_clicking_acknowledge_at_once_give_one_acknowledgement(es_indices):
    es, indices = es_indices
    store.write(es, [store.anomaly_action(indices, anomaly())])
    names = [f"U0PERSON{i}" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda name: anomalies.acknowledge(es, indices, "tsla-drop-1", name), names))
    stored = Anomaly.model_validate(es.get(index=indices.anomalies, id="tsla-drop-1")["_source"])
    assert stored.acknowledged_by in names and {r.acknowledged_by for r in results} == {stored.acknowledged_by}


def test_one_message_per_episode_edited_in_place_and_reposted_when_gone(real_stack, fresh_redis, es_indices, slack):
    es, indices = es_indices
    queued: list = []
    sender = notifier(real_stack, fresh_redis, es_indices, slack, queued)
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as limited:  # a delivery never waits inside a call: its schedule does
        sender.post(AlertEvent.for_anomaly(anomaly()))
    verdict = slack_errors.classify(limited.value)
    assert (verdict.kind, verdict.retry_after) == ("retry", 1.0)
    sender.post(AlertEvent.for_anomaly(anomaly()))  # the alert goes out before detection stored it
    posts = slack.calls("chat.postMessage")
    assert [call.status for call in posts] == [429, 200]
    assert "▁" in str(posts[1].params["blocks"]) and "*3,100* in the window" in str(posts[1].params["blocks"])
    stored = Anomaly.model_validate(es.get(index=indices.anomalies, id="tsla-drop-1")["_source"])
    ref = stored.slack
    assert ref is not None and ref.ts == posts[1].response["ts"]

    ended = anomaly(resolved_at=AT + timedelta(minutes=12), status="resolved")
    sender.post(AlertEvent.for_anomaly(ended, "anomaly.resolved"))
    update = slack.calls("chat.update")[-1]
    assert update.ok and update.params["ts"] == ref.ts
    assert "Recovered after 12 min" in str(update.params["blocks"])
    assert [e["action_id"] for b in update.params["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "alert.history",
        "alert.acknowledge_as",  # why it moved is still asked: it tunes thresholds
    ]

    slack.clear()  # Slack forgot the message: the next edit posts anew and stores the new ref
    anomalies.acknowledge(es, indices, "tsla-drop-1", "U0ALICE01")
    sender.changed("tsla-drop-1")
    assert [call.response.get("error") for call in slack.calls("chat.update")] == ["message_not_found"]
    reposted = slack.calls("chat.postMessage")[-1]
    assert "Acknowledged by <@U0ALICE01>" in str(reposted.params["blocks"])
    stored = Anomaly.model_validate(es.get(index=indices.anomalies, id="tsla-drop-1")["_source"])
    assert stored.slack is not None and stored.slack.ts == reposted.response["ts"] != ref.ts
    assert len(slack.calls("chat.postMessage")) == 1 and queued == []


def test_new_peaks_edit_at_most_once_per_interval_and_the_last_is_never_lost(
    real_stack, fresh_redis, es_indices, slack
):
    queued: list = []
    sender = notifier(real_stack, fresh_redis, es_indices, slack, queued, slack_edit_interval_seconds=10)
    sender.post(AlertEvent.for_anomaly(anomaly()))
    for peak in (-7.0, -8.5):  # two new peaks within the interval: one follow-up, for when it expires
        anomaly_changed(
            fresh_redis, sender.settings, anomaly(peak_price=100 + peak, peak_change_pct=peak), sender.enqueue
        )
    assert [(kind, key) for kind, key, _ in queued] == [("alert", "tsla-drop-1")] and 9 < queued[0][2] <= 10
    assert slack.calls("chat.update") == []
    sender.refresh("alert", "tsla-drop-1")  # the follow-up task: the newest peak, not the first one
    assert "91.50" in str(slack.calls("chat.update")[-1].params["blocks"])
    anomaly_changed(fresh_redis, sender.settings, anomaly(peak_price=90, peak_change_pct=-10), sender.enqueue)
    assert len(queued) == 2 and 9 < queued[1][2] <= 10  # the interval counts again from that edit


def test_a_storm_of_concurrent_alerts_posts_one_grouped_message(real_stack, fresh_redis, es_indices, slack):
    es, _ = es_indices
    queued: list = []
    sender = notifier(real_stack, fresh_redis, es_indices, slack, queued, storm_threshold=5, storm_window_seconds=120)
    crashes = [anomaly(f"s{i:02d}-drop", f"S{i:02d}", peak_change_pct=-6 - i) for i in range(12)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda a: sender.post(AlertEvent.for_anomaly(a)), crashes))

    posts = slack.calls("chat.postMessage")
    grouped = [call for call in posts if "Market storm" in call.params["text"]]
    assert len(grouped) == 1 and len(posts) == 1 + 5  # five alone (the threshold), then one grouped message
    storm_id = grouped[0].params["blocks"][-1]["elements"][0]["value"]
    assert "More than 5 alerts reached this channel within 2 min" in grouped[0].params["blocks"][1]["text"]["text"]
    assert len(storms.storm_members(fresh_redis, storm_id)) == 7
    for kind, key, _ in dict.fromkeys(queued):  # the throttled follow-ups, as the worker would run them
        sender.refresh(kind, key)
    final = (slack.calls("chat.update") or grouped)[-1].params
    assert final["text"].startswith("🌪️ Market storm: 7 alerts")
    members = storms.storm_members(fresh_redis, storm_id)
    lines = "".join(b["text"]["text"] for b in final["blocks"] if b["type"] == "section")
    assert all(f"*{a.symbol}*" in lines for a in crashes if a.id in members)
    es.indices.refresh(index=es_indices[1].anomalies)
    hits = es.search(index=es_indices[1].anomalies, query={"terms": {"id": members}})["hits"]["hits"]
    assert {hit["_source"]["slack"]["ts"] for hit in hits} == {grouped[0].response["ts"]}  # the grouped message
