"""Detect: from a symbol's ticks to anomalies.

`detection` and `rules` are pure (ticks and state in, anomalies out, no I/O); `state` stores the per-symbol
window state and per-partition progress in Redis; `backtest` replays stored history through the same pure
detection for threshold previews. May import the shared core only.
"""
