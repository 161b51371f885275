"""Personal watches in detection (pure): evaluated in the same pass as the channel's rules, one episode per
watch and watcher, never silenced by a channel mute, the same in any batching."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.silence import Hush
from pipeline.detect.state import decode, encode
from pipeline.schema import to_ms

NOW = datetime(2026, 12, 1, tzinfo=UTC)
START = to_ms(NOW - timedelta(hours=1))
CHANNEL = Rule("drop", 5.0, 600, 600)


def watch(user: str, threshold: float, rule: str = "drop", window: int = 600) -> Rule:
    return Rule(rule, threshold, window, window, watcher=user)  # type: ignore[arg-type]


def seconds(prices: list[float]) -> list[TickPoint]:
    return [TickPoint(START + i * 10_000, p) for i, p in enumerate(prices)]


PRICES = [100.0] * 20 + [98.5, 97.0, 97.0, 96.0, 96.0, 94.0, 94.0] + [94.0] * 150  # -1.5, -3, -4, -6 %, then flat


def run(rules: list[Rule], batch: int = 1000, silence: list[Hush] | None = None):
    state, found, new, resolved = SymbolState(), {}, [], []
    ticks = seconds(PRICES)
    for i in range(0, len(ticks), batch):
        out = advance(state, "TSLA", ticks[i : i + batch], rules, lateness_ms=0, now=NOW, silence=silence or [])
        found.update({a.id: a for a in out.anomalies})
        new += out.new_ids
        resolved += out.resolved_ids
    return found, new, resolved, state


def test_each_watch_alerts_once_for_its_watcher_beside_the_channels_rule():
    rules = [CHANNEL, watch("U1", 3.0), watch("U2", 3.0), watch("U3", 10.0), watch("U4", 2.0, window=60)]
    found, new, resolved, _ = run(rules)
    by = {(a.watcher, a.rule): a for a in found.values()}
    assert set(by) == {(None, "drop"), ("U1", "drop"), ("U2", "drop"), ("U4", "drop")}  # U3's 10 % never came
    assert len(set(new)) == len(new) == 4 and set(resolved) == set(new)  # once each, and each resolves
    assert by[("U1", "drop")].change_pct == -3.0 and by[(None, "drop")].change_pct == -6.0
    assert by[("U1", "drop")].id != by[("U2", "drop")].id
    assert by[("U4", "drop")].change_pct == -3.0  # its one-minute window: -1.5 % then -3 % from 98.5's high


def test_watches_give_the_same_alerts_in_any_batching_and_keep_no_state_while_armed():
    rules = [CHANNEL, *(watch(f"U{i}", 2.0 + i / 10) for i in range(50))]
    one = run(rules)
    for size in (1, 7):
        again = run(rules, batch=size)
        assert sorted(again[1]) == sorted(one[1]) and sorted(again[2]) == sorted(one[2])
        assert {k: a.model_dump() for k, a in again[0].items()} == {k: a.model_dump() for k, a in one[0].items()}
    assert all("@" not in key for key in one[3].live)  # every episode over: no watch keeps an entry


def test_a_channel_mute_does_not_silence_a_personal_watch():
    hush = Hush("TSLA", 0.0, "muted by alice: earnings")
    found, *_ = run([CHANNEL, watch("U1", 3.0)], silence=[hush])
    by = {a.watcher: a for a in found.values()}
    assert by[None].muted and not by["U1"].muted


def test_a_longer_watch_window_gives_the_channels_zscore_the_same_usual_in_any_batching():
    """The channel's 5-minute zscore keeps folding its usual over the ticks a 15-minute watch keeps in the window;
    what earlier batches folded for good (stored with the state) must give exactly what one batch computes."""
    rng = random.Random(5)
    prices, price = [], 100.0
    for i in range(720):
        price *= math.exp(rng.gauss(0, 0.0008) - (0.03 if i == 600 else 0))
        prices.append(price)
    ticks = [TickPoint(START + i * 5_000, p, 10.0 + rng.random()) for i, p in enumerate(prices)]
    rules = [Rule("zscore", 4.0, 300, 300), Rule("volume", 3.0, 300, 300), watch("U1", 5.0, "zscore", 900)]
    results = []
    for size in (720, 1, 17):
        state, found = SymbolState(), {}
        for i in range(0, len(ticks), size):
            out = advance(state, "X", ticks[i : i + size], rules, lateness_ms=30_000, now=NOW, baseline_seconds=600)
            found.update({a.id: a.model_dump() for a in out.anomalies})
            state = decode(encode(state))
        results.append(found)
        assert 300_000 in state.folded  # what earlier batches folded for the channel's window, kept with the state
    assert results[0] and results[1] == results[0] and results[2] == results[0]
    assert any(a["rule"] == "zscore" and a["watcher"] is None for a in results[0].values())
