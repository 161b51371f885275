"""Alerting: an anomaly's life after detection.

Its state in Elasticsearch (`anomalies`), its Slack message (`messages` builds Block Kit, `slack_messages`
posts and edits it, `storms` groups many), the ids its buttons carry (`actions`), the delivery channels
(`channels`: Kafka `alerts`, the log, Slack) and the delivery tasks (`tasks`). May import the shared core and
`pipeline.worker.app`; never detection's internals.
"""
