"""Worker: the Celery spine.

`app` makes the one Celery app (configuration, serializer, routes, task names) and each worker process's
resources; `batches` applies a partition's batch of ticks (detect, store, hand alerts on). Task modules of
other wings (alerting, webhooks) register on the same app. May import every wing; no wing imports it
except through `app`.
"""
