"""Feed health: noticing a symbol that stopped ticking while its market is open, and its recovery.

`cadence` learns each symbol's usual gap between live ticks (pure, called from the batch task); `health`
decides which feeds are stale or back (pure); `watch` runs that decision on the clock, once per interval
across every alerts worker, and records the episodes; `tasks` deliver the `feed.stale` and `feed.recovered`
events (Slack, webhooks, the `alerts` topic). May import the core modules, `alerting.messages` (texts),
`webhooks.subscriptions` (dispatch) and `worker`; nothing imports it but the worker's scheduler and batches.
"""
