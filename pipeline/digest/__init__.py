"""Digest: the daily summary of a market day.

`summary` computes the day as data from Elasticsearch and the DLQ, `message` renders it (Block Kit, text,
chart, the `digest.daily` event) and `posting` posts it once per day and channel, then edits. The Airflow DAG
and `tickwatch digest` only call these. May import the shared core, alerting's templates and webhooks'
`subscriptions` (to dispatch `digest.daily`).
"""
