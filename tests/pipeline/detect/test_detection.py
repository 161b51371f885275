"""Unit tests of the pure detection logic: rules, episodes, event time, lateness, replay."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pipeline.detect.detection import Rule, SymbolState, TickPoint, advance
from pipeline.detect.rules import Baseline, SlidingExtremes, WindowChecks
from pipeline.detect.silence import Hush
from pipeline.detect.state import decode, encode

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
T0 = 1_800_000_000_000  # ms
DROP = Rule("drop", 5.0, 300, 300)
RISE = Rule("rise", 5.0, 300, 300)
HUSH = Hush("TSLA", 1.0, "muted by alice")


def path(*segments: tuple[float, float, int]) -> list[TickPoint]:
    """Ticks one second apart: each segment moves linearly from a price to another over n seconds."""
    ticks: list[TickPoint] = []
    for start, end, seconds in segments:
        for k in range(seconds):
            ticks.append(TickPoint(T0 + len(ticks) * 1000, start + (end - start) * k / seconds, 10.0))
    return ticks


def run(ticks: list[TickPoint], rules=(DROP, RISE), *, batch=50, lateness_ms=30_000, roundtrip=True):
    """Feed ticks batch by batch (state encoded as Redis holds it); return the final anomalies by id."""
    state = SymbolState()
    found = {}
    new_ids: list[str] = []
    for i in range(0, len(ticks), batch):
        out = advance(state, "TSLA", ticks[i : i + batch], rules, lateness_ms=lateness_ms, now=NOW)
        new_ids += out.new_ids
        found.update({a.id: a for a in out.anomalies})
        if roundtrip:
            state = decode(encode(state))
    return found, new_ids, state


def comparable(anomalies: dict) -> dict:
    return {key: a.model_dump(exclude={"detected_at"}) for key, a in anomalies.items()}


CRASH = path((100, 100, 600), (100, 92, 90), (92, 92, 600))


@pytest.mark.parametrize("seed", range(5))
def test_sliding_extremes_match_the_window_they_slide_over(seed: int):
    rng = random.Random(seed)
    prices = [rng.choice([rng.uniform(90, 110), 100.0]) for _ in range(400)]  # ties included
    extremes = SlidingExtremes(prices)
    lo = rng.randrange(0, 50)
    for hi in range(lo, len(prices)):
        lo = min(hi, lo + rng.choice([0, 0, 1, 2, 40]))  # steady, then sometimes a gap empties the window
        expected = (max(prices[lo:hi]), min(prices[lo:hi])) if lo < hi else None
        assert extremes(lo, hi) == expected


def test_price_rules_measure_from_the_latest_tick_at_the_window_extreme():
    ts = [T0 + k * 1000 for k in range(5)]

    def reference(rule: Rule, prices: list[float]) -> int | None:
        checks = WindowChecks(
            ts, prices, [10.0] * 5, excluded=set(), baseline=Baseline(), tau_ms=3_600_000, lateness_ms=0
        )
        hit = checks.check(rule, len(prices) - 1)
        return None if hit is None else hit.ref

    assert reference(DROP, [99.0, 100.0, 98.0, 100.0, 94.9]) == 3  # the high's latest tick
    assert reference(DROP, [99.0, 100.0, 98.0, 99.0, 95.1]) is None
    assert reference(RISE, [100.0, 101.0, 100.0, 102.0, 105.0]) == 2
    assert reference(DROP, [1.0]) is None  # nothing before it: no window


def test_a_crash_alerts_once_and_the_deeper_move_updates_it():
    found, new_ids, _ = run(CRASH)
    assert len(new_ids) == 1 and list(found) == new_ids
    anomaly = found[new_ids[0]]
    assert anomaly.rule == "drop" and anomaly.symbol == "TSLA"
    assert anomaly.reference_price == 100
    assert -5.1 < anomaly.change_pct <= -5.0
    assert anomaly.peak_change_pct == pytest.approx(-7.9, abs=0.1)  # the deepest point of the episode
    assert anomaly.timestamp < anomaly.peak_timestamp


def test_replaying_the_same_ticks_alerts_nothing_new():
    state = SymbolState()
    first = advance(state, "TSLA", CRASH, [DROP], lateness_ms=30_000, now=NOW)
    again = advance(state, "TSLA", CRASH[-100:], [DROP], lateness_ms=30_000, now=NOW)
    assert len(first.new_ids) == 1
    assert again.new_ids == []
    assert len(again.duplicates) + len(again.late) == 100


def test_batch_boundaries_do_not_change_the_result():
    whole, ids_whole, _ = run(CRASH, batch=len(CRASH))
    small, ids_small, _ = run(CRASH, batch=7)
    assert ids_whole == ids_small
    assert comparable(whole) == comparable(small)


def test_out_of_order_within_lateness_gives_the_in_order_result():
    rng = random.Random(7)
    shuffled = []
    for i in range(0, len(CRASH), 20):  # disorder of up to 20 s, inside the 30 s lateness
        block = CRASH[i : i + 20]
        rng.shuffle(block)
        shuffled += block
    in_order, ids_in_order, _ = run(CRASH, batch=10)
    disordered, ids_disordered, _ = run(shuffled, batch=10)
    assert ids_disordered == ids_in_order
    assert comparable(disordered) == comparable(in_order)


def test_ticks_older_than_the_lateness_are_reported_late_not_evaluated():
    state = SymbolState()
    advance(state, "TSLA", CRASH[:200], [DROP], lateness_ms=30_000, now=NOW)
    stale = TickPoint(CRASH[100].ts - 500, 1.0)  # would be a huge drop, but it is 100 s late
    out = advance(state, "TSLA", [stale], [DROP], lateness_ms=30_000, now=NOW)
    assert out.late == [stale] and out.anomalies == []


def test_rule_rearms_only_after_a_clear_cooldown():
    # Two crashes 8 minutes apart: the first stays in the window for 5 min, then 5 min of cooldown.
    close = path((100, 100, 400), (100, 90, 30), (90, 90, 450), (90, 80, 30), (80, 80, 400))
    _, close_ids, _ = run(close, rules=[DROP])
    far = path((100, 100, 400), (100, 90, 30), (90, 90, 700), (90, 80, 30), (80, 80, 400))
    found, far_ids, _ = run(far, rules=[DROP])
    assert len(close_ids) == 1
    assert len(far_ids) == 2
    assert found[far_ids[1]].reference_price == 90


def test_rise_is_the_mirror_of_drop():
    found, ids, _ = run(path((100, 100, 400), (100, 110, 60), (110, 110, 400)), rules=[DROP, RISE])
    assert [found[i].rule for i in ids] == ["rise"]
    assert found[ids[0]].change_pct >= 5.0


def test_a_disabled_rule_never_fires():
    _, ids, _ = run(CRASH, rules=[Rule("drop", 0, 300, 300)])
    assert ids == []


def test_muted_symbols_are_flagged():
    state = SymbolState()
    out = advance(state, "TSLA", CRASH, [DROP], lateness_ms=30_000, now=NOW, silence=[HUSH])
    assert out.anomalies and all(a.muted for a in out.anomalies)


def test_window_memory_is_bounded():
    _, _, state = run(path((100, 100, 5000)), rules=[DROP])
    assert len(state.ts) <= 300 + 30 + 1


def test_a_tick_arriving_after_later_ones_resettles_from_the_watermark():
    moved = CRASH[:650] + CRASH[651:670] + [CRASH[650]] + CRASH[670:]  # 20 s late, mid-crash
    in_order, ids_in_order, _ = run(CRASH, batch=5)
    late_one, ids_late_one, state = run(moved, batch=5)
    assert ids_late_one == ids_in_order
    assert comparable(late_one) == comparable(in_order)
    assert state.watermark == CRASH[-1].ts - 30_000


def test_a_late_tick_that_moves_the_reference_updates_the_alert_instead_of_sending_another():
    sharp = path((100, 100, 600), (94, 94, 120))  # the drop happens between two ticks
    swapped = [*sharp[:599], sharp[600], sharp[599], *sharp[601:]]  # the last tick at 100 comes after the drop
    in_order, ids_in_order, _ = run(sharp, batch=600)
    late, ids_late, _ = run(swapped, batch=600)
    assert len(ids_in_order) == len(ids_late) == 1  # one episode, one alert, in both orders
    expected = comparable(in_order)[ids_in_order[0]]
    got = comparable(late)[ids_late[0]]
    assert {**got, "id": None} == {**expected, "id": None}  # same fields; the id is the one first sent


def test_the_first_batch_of_a_symbol_also_tolerates_lateness():
    state = SymbolState()
    advance(state, "TSLA", [TickPoint(T0 + 60_000, 100.0)], [DROP], lateness_ms=30_000, now=NOW)
    out = advance(state, "TSLA", [TickPoint(T0 + 50_000, 100.0)], [DROP], lateness_ms=30_000, now=NOW)
    assert out.late == [] and state.ts == [T0 + 50_000, T0 + 60_000]


def test_an_episode_ends_once_the_condition_has_been_clear_for_the_cooldown():
    found, new_ids, _ = run(CRASH, rules=[DROP], batch=25)
    anomaly = found[new_ids[0]]
    assert anomaly.status == "resolved"
    # Prices sit at 92 from 690 s. The condition holds while the window (300 s) still holds a price >= 96.84,
    # i.e. a tick of the slope up to 635 s: it last holds at 935 s and the episode ends a cooldown later.
    assert anomaly.resolved_at is not None
    assert (anomaly.resolved_at.timestamp() * 1000 - T0) / 1000 == pytest.approx(935 + 300, abs=1)


def test_resolution_and_deepening_are_reported_once_each_batch_they_happen_in():
    state = SymbolState()
    resolved: list[str] = []
    deepened: list[list[str]] = []
    for i in range(0, len(CRASH), 30):
        out = advance(state, "TSLA", CRASH[i : i + 30], [DROP], lateness_ms=30_000, now=NOW)
        resolved += out.resolved_ids
        deepened.append(out.deepened_ids)
        assert not set(out.deepened_ids) & set(out.new_ids)  # a new anomaly is not also "deepened"
    assert len(resolved) == 1
    assert any(deepened) and all(ids in ([], resolved) for ids in deepened)  # only that episode deepens
    assert not any(deepened[-5:])  # after the bottom, the peak no longer moves


def test_an_episode_still_holding_is_not_resolved():
    found, new_ids, _ = run(CRASH[:800], rules=[DROP])
    assert found[new_ids[0]].status == "open" and found[new_ids[0]].resolved_at is None


def resolution_tick(ticks: list[TickPoint]) -> int:
    """The index of the tick that ends the crash's episode, fed one tick a batch."""
    state = SymbolState()
    for i, tick in enumerate(ticks):
        if advance(state, "TSLA", [tick], [DROP], lateness_ms=30_000, now=NOW).resolved_ids:
            return i
    raise AssertionError("the episode never ended")


def test_a_late_tick_after_the_resolution_does_not_report_it_again():
    """The re-evaluation from the watermark ends the episode again: it is the same resolution, sent once."""
    end = resolution_tick(CRASH)
    held_back = CRASH[end - 10]  # arrives 15 ticks late, inside the lateness, after the resolution
    ticks = [*CRASH[: end - 10], *CRASH[end - 9 : end + 5], held_back, *CRASH[end + 5 :]]
    state, resolved, updates = SymbolState(), [], 0
    for tick in ticks:
        out = advance(state, "TSLA", [tick], [DROP], lateness_ms=30_000, now=NOW)
        resolved += out.resolved_ids
        updates += sum(a.resolved_at is not None for a in out.anomalies)
        state = decode(encode(state))
    assert len(resolved) == 1 and updates == 2  # re-evaluated (the document is rewritten), reported once


def test_an_episode_keeps_the_mute_it_opened_with():
    """Notified episodes are resolved in the open even if the symbol is muted meanwhile, and the reverse."""
    end = resolution_tick(CRASH)
    for muted_at_open in (False, True):
        state = SymbolState()
        at_open, afterwards = ([HUSH], []) if muted_at_open else ([], [HUSH])
        opened = advance(state, "TSLA", CRASH[:700], [DROP], lateness_ms=30_000, now=NOW, silence=at_open)
        later = advance(state, "TSLA", CRASH[700:], [DROP], lateness_ms=30_000, now=NOW, silence=afterwards)
        (anomaly,) = later.anomalies
        assert opened.new_ids == later.resolved_ids == [anomaly.id] and end >= 700
        assert anomaly.muted is muted_at_open and opened.anomalies[0].muted is muted_at_open


def test_turning_a_rule_off_ends_its_open_episode_once():
    state = SymbolState()
    opened = advance(state, "TSLA", CRASH[:700], [DROP, RISE], lateness_ms=30_000, now=NOW)
    off = [Rule("drop", 0, 300, 300), RISE]
    ended = advance(state, "TSLA", CRASH[700:710], off, lateness_ms=30_000, now=NOW)
    after = advance(state, "TSLA", CRASH[710:], off, lateness_ms=30_000, now=NOW)
    assert ended.resolved_ids == opened.new_ids and ended.anomalies[0].resolved_at.timestamp() * 1000 == CRASH[700].ts
    assert after.anomalies == [] and after.resolved_ids == [] and "drop" not in state.live
