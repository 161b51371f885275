"""Webhooks: subscriptions and their signed, retried deliveries (Standard Webhooks).

`subscriptions` is the service front-ends call, `delivery_log` keeps every delivery and its schedule in
Redis, `delivery` sends them (Celery task and retry scheduler), `ssrf` guards every address and
`encryption` keeps secrets encrypted at rest. May import the shared core and `pipeline.worker.app`.
"""
