"""Tick retention as an Airflow DAG: every day, daily tick indices older than TICKWATCH_TICK_RETENTION_DAYS are
deleted (anomalies are kept), exactly as `tickwatch retention` does (pipeline.store.drop_expired_ticks); without
it nothing deletes old ticks on a schedule. A task of its own, so a slow deletion never delays the digest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task


@dag(
    dag_id="tick_retention",
    description="Delete daily tick indices older than TICKWATCH_TICK_RETENTION_DAYS (pipeline.store)",
    schedule="15 3 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(minutes=30)},
    tags=["tickwatch"],
)
def tick_retention() -> None:
    @task
    def drop_expired_ticks() -> list[str]:
        """The names of the indices deleted."""
        from pipeline import store
        from pipeline.context import Context
        from pipeline.settings import Settings

        ctx = Context(Settings())
        return store.drop_expired_ticks(ctx.es, ctx.indices, ctx.settings.tick_retention_days)

    drop_expired_ticks()


tick_retention()
