"""The daily digest DAG: it imports cleanly with the expected schedule and tasks, and `dag.test()` over a seeded
day posts the numbers the seed implies, then edits that message on a second run instead of posting again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from airflow.dag_processing.dagbag import DagBag

from pipeline import store
from pipeline.digest import posting as digest_posting
from stack.fake_slack import FakeSlack
from tests.airflow.conftest import REPO
from tests.pipeline.digest.day import DAY, seed
from tests.pipeline.digest.test_digest import digest_deliveries, posted_numbers, subscribe_to_digests


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_imports_with_its_schedule_and_tasks(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dags) == {"daily_digest", "tick_retention"}
    dag = dagbag.dags["daily_digest"]
    assert dag is not None
    assert dag.timetable.expression == "30 21 * * 1-5"
    assert dag.catchup is False
    assert {t.task_id for t in dag.tasks} == {"extract", "render", "chart", "post", "notify_webhooks"}
    assert dag.get_task("post").upstream_task_ids == {"extract", "render", "chart"}
    assert dag.get_task("notify_webhooks").upstream_task_ids == {"extract", "post"}
    assert all(t.retries == 3 and t.retry_exponential_backoff for t in dag.tasks)


def test_the_day_is_the_runs_calendar_day_in_the_digest_zone_or_the_param() -> None:
    from dags.daily_digest import _day
    from pipeline.settings import Settings

    evening = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 21:00 on the 20th in New York
    assert _day({}, evening, None, Settings(digest_tz="America/New_York")).isoformat() == "2026-11-20"
    assert _day({}, evening, None, Settings(digest_tz="UTC")).isoformat() == "2026-11-21"
    assert _day({}, None, evening, Settings()).isoformat() == "2026-11-21"  # manual runs: run_after
    assert _day({"day": "2026-11-18"}, evening, None, Settings()).isoformat() == "2026-11-18"


def test_dag_run_posts_the_seeded_day_then_edits_it(dagbag: DagBag, airflow_db, namespace, monkeypatch) -> None:
    expected = seed(namespace.settings)
    subscription = subscribe_to_digests(namespace.settings)
    dag = dagbag.dags["daily_digest"]
    with FakeSlack() as slack:
        for key, value in namespace.env.items():
            if key.startswith("TICKWATCH_"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("TICKWATCH_SLACK_API_URL", slack.url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("TICKWATCH_DIGEST_CHANNEL", "#market-digest")

        first = dag.test(logical_date=datetime(2026, 11, 20, 21, 30, tzinfo=UTC))
        assert first.state == "success"  # dag.test() returns a failed run without raising
        [posted] = slack.calls("chat.postMessage")
        text = posted_numbers(posted.params["blocks"])
        assert f"*4* symbols traded · *{expected.ticks:,}* ticks · *3* anomalies (2 acknowledged)" in text
        assert "*BBB* -10.00%" in text and f"Late ticks: {expected.late}" in text
        assert f"dead letters: {expected.dead_letters}" in text
        [upload] = slack.calls("files.completeUploadExternal")
        assert upload.params["thread_ts"] == posted.response["ts"]

        second = dag.test(logical_date=datetime(2026, 11, 20, 23, 0, tzinfo=UTC))  # a re-run of the same day
        assert second.state == "success"
        assert len(slack.calls("chat.postMessage")) == 1
        [update] = slack.calls("chat.update")
        assert update.params["ts"] == posted.response["ts"]
        assert posted_numbers(update.params["blocks"]) == text
        assert slack.calls("files.completeUploadExternal")[1].params["thread_ts"] == posted.response["ts"]

    record = digest_posting.posted_message(
        store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix), DAY, "#market-digest"
    )
    assert record["runs"] == 2
    assert digest_deliveries(namespace.settings, subscription) == [("digest.daily", "msg_digest_2026-11-20")]


def test_the_digest_posts_with_the_airflow_slack_connection_when_one_is_defined(
    dagbag: DagBag, airflow_db, namespace, monkeypatch
) -> None:
    seed(namespace.settings)
    dag = dagbag.dags["daily_digest"]
    with FakeSlack() as slack:
        for key, value in namespace.env.items():
            if key.startswith("TICKWATCH_"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("TICKWATCH_SLACK_API_URL", "http://127.0.0.1:9/unused/")  # the connection wins
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-settings")
        connection = {"conn_type": "slack", "password": "xoxb-from-connection", "extra": {"base_url": slack.url}}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps(connection))

        assert dag.test(logical_date=datetime(2026, 11, 20, 21, 30, tzinfo=UTC)).state == "success"
        [posted] = slack.calls("chat.postMessage")
        assert posted.authorization == "Bearer xoxb-from-connection"


def test_retention_runs_daily_and_deletes_only_expired_tick_indices(dagbag: DagBag, airflow_db, namespace, monkeypatch):
    dag = dagbag.dags["tick_retention"]
    assert dag.timetable.expression == "15 3 * * *" and dag.catchup is False
    es, indices = store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix)
    today = datetime.now(UTC)
    old, recent = (indices.tick_index(int((today - timedelta(days=d)).timestamp() * 1000)) for d in (40, 1))
    for name in (old, recent):
        es.indices.create(index=name)
    for key, value in namespace.env.items():
        if key.startswith("TICKWATCH_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("TICKWATCH_TICK_RETENTION_DAYS", "30")

    assert dag.test().state == "success"
    assert not es.indices.exists(index=old) and es.indices.exists(index=recent)
    assert es.indices.exists(index=indices.anomalies)  # anomalies are kept
