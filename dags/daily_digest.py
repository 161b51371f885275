"""The daily digest as an Airflow 3 DAG: extract -> render, chart -> post -> notify.

No logic of its own: every step is one call into `pipeline.digest` (the data), `pipeline.digest_message`
(the words and the chart) or `pipeline.digest_posting`, which `tickwatch digest` uses too. The tasks pass
JSON through XCom (the summary, the rendered message, the chart as base64, so any worker can run any task);
which message belongs to which day is kept in Elasticsearch, not in Airflow. Which day: the `day` param if
given, else the calendar day (in TICKWATCH_DIGEST_TZ) of the run's logical date -- the schedule fires after
the close of the day it summarises; the data interval is not used (a cron schedule makes it zero-length).
Re-running a day edits its Slack message (see pipeline.digest_posting.post).
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Param, dag, task

from pipeline.settings import Settings

if TYPE_CHECKING:
    from slack_sdk import WebClient

SLACK_CONN_ID = "slack_api_default"


def _slack(settings: Settings) -> WebClient:
    """Airflow keeps credentials in connections: the Slack connection `slack_api_default` when one is defined
    (SlackHook: its token, and `base_url` in its extras), else SLACK_BOT_TOKEN and TICKWATCH_SLACK_API_URL as
    `tickwatch digest` uses them; the same retries (429s, dropped links) either way."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.slack.hooks.slack import SlackHook

    from pipeline.context import slack_client

    fallback = slack_client(settings)
    try:
        return SlackHook(slack_conn_id=SLACK_CONN_ID, retry_handlers=fallback.retry_handlers).client
    except AirflowNotFoundException:
        return fallback


def _day(params: dict[str, Any], logical_date: datetime | None, run_after: datetime | None, settings: Settings) -> date:
    from zoneinfo import ZoneInfo

    if params.get("day"):
        return date.fromisoformat(params["day"])
    moment = logical_date or run_after or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(settings.digest_tz)).date()


@dag(
    dag_id="daily_digest",
    description="The day's market summary to Slack, webhooks and Kafka (pipeline.digest)",
    schedule=Settings().digest_schedule,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # two runs of one day must not race to post
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(minutes=10),
    },
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="YYYY-MM-DD; empty: the day of the run's logical date",
        )
    },
    tags=["tickwatch"],
)
def daily_digest() -> None:
    @task
    def extract(params: dict[str, Any] | None = None, logical_date: datetime | None = None, dag_run: Any = None) -> str:
        """The summary of the day, as JSON."""
        from pipeline import groups
        from pipeline.context import Context
        from pipeline.digest import summary as digest

        ctx = Context(Settings())
        day = _day(params or {}, logical_date, getattr(dag_run, "run_after", None), ctx.settings)
        summary = digest.build(ctx.es, ctx.indices, ctx.settings, day, groups=groups.load(ctx.redis))
        return summary.model_dump_json()

    @task
    def render(summary: str) -> dict[str, Any]:
        """Block Kit and fallback text."""
        from pipeline.digest import message as digest_message
        from pipeline.digest import summary as digest

        return digest_message.message(digest.Digest.model_validate_json(summary))

    @task
    def chart(summary: str) -> str | None:
        """The PNG, base64 (about 60 KB: XCom carries it to whichever worker posts), or None when no symbol
        traded."""
        from pipeline.digest import message as digest_message
        from pipeline.digest import summary as digest

        png = digest_message.chart(digest.Digest.model_validate_json(summary))
        return base64.b64encode(png).decode() if png is not None else None

    @task
    def post(summary: str, message: dict[str, Any], png: str | None) -> dict[str, Any]:
        """Post, or edit the day's message; the chart goes into its thread."""
        from pipeline.context import Context
        from pipeline.digest import posting as digest_posting
        from pipeline.digest import summary as digest

        ctx = Context(Settings())
        posted = digest_posting.post(
            digest.Digest.model_validate_json(summary),
            message,
            ctx.settings,
            ctx.es,
            ctx.indices,
            _slack(ctx.settings),
            png=base64.b64decode(png) if png else None,
        )
        return {"channel": posted.channel, "ts": posted.ts, "updated": posted.updated, "file_id": posted.file_id}

    @task
    def notify_webhooks(summary: str) -> int:
        """The digest.daily event to webhook subscribers and the Kafka alerts topic; deliveries queued."""
        from pipeline.context import Context
        from pipeline.digest import posting as digest_posting
        from pipeline.digest import summary as digest

        ctx = Context(Settings())
        return digest_posting.notify(digest.Digest.model_validate_json(summary), ctx.settings, ctx.redis)

    summary = extract()
    posted = post(summary, render(summary), chart(summary))
    posted >> notify_webhooks(summary)


daily_digest()
