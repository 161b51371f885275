"""Ingest: how ticks reach the pipeline and leave Kafka.

Synthetic markets (`generator`) and market-data files (`bars`) become ticks, `publish` puts them on the
`financial_prices` topic (whose creation and producer settings are in `topics`), and the `bridge` consumes
them, dead-letters what is malformed and hands validated batches to the workers. May import the shared core
(schema, settings, metrics, keys) and `pipeline.detect.state` (partition progress); nothing from alerting,
webhooks or digest.
"""
