"""Detect: from a symbol's ticks to anomalies.

Pure (ticks and state in, anomalies out, no I/O): `detection` (the pass over a batch), `rules` (the arithmetic),
`window` (the per-symbol state it keeps), `silence` (mutes), `market` (benchmarks, β), `watch_groups` (personal
watches), `tuning` (suggested thresholds). `state` stores the window state and per-partition progress in Redis;
`backtest` replays stored history through the same pure detection for threshold previews. May import the shared
core only.
"""
