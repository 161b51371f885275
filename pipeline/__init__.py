"""Tickwatch's core: the services every front-end (bot, api, dags, the CLI) shares, in wings named for a job
in a tick's or an alert's life.

    ingest/     ticks into Kafka and out of it: generator, market-data files, publish, topics, the bridge
    detect/     pure detection and its rules, window state in Redis, backtests for previews
    worker/     the Celery spine: the app, the worker's resources, batch application
    alerting/   an anomaly's life after detection: its state, Slack messages, storms, delivery channels
    webhooks/   subscriptions, the delivery log, signed and retried delivery, the SSRF guard
    digest/     the daily summary: as data, rendered, posted

The shared core sits beside them: `schema` (the public contracts), `settings`, `keys` (the Redis keyspace),
`context` (the clients every process uses), `store` (Elasticsearch), `history` (reads), `controls` (mutes,
rules, audit), `durations`, `cursors`, `metrics`, `tokens` (API tokens) and `charts`. The core imports no
wing; wings import the core and say in their own docstring which other wings they may use. Nothing here
imports a front-end.
"""
