"""Groups, group mutes and thresholds with their precedence, and every kind of mute, against the real Redis and
Elasticsearch (as the workers read them through `controls_for`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline import controls, keys
from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.detect import state as states
from pipeline.detect.detection import Episode, SymbolState
from pipeline.mutes import Window, active_window, parse_every, recurrence

ALICE = Actor("alice", "slack", "U0ALICE01")


def _read(service: Controls, *symbols: str) -> dict[str, controls.SymbolControls]:
    return controls.controls_for(service.redis, service.settings, list(symbols))


def test_a_symbols_own_rule_beats_its_groups_which_beats_the_default(service: Controls):
    service.change_group("crypto", ALICE, add=["*-USD"])
    service.change_group("majors", ALICE, add=["BTC-USD"])
    service.set_rule("group:crypto", "drop", ALICE, threshold_pct=8)
    service.set_rule("group:majors", "drop", ALICE, threshold_pct=6)  # crypto comes first by name
    service.set_rule("ETH-USD", "drop", ALICE, threshold_pct=2)
    drops = {
        s: next(r for r in c.rules if r.name == "drop").threshold_pct
        for s, c in _read(service, "BTC-USD", "ETH-USD", "SOL-USD", "TSLA").items()
    }
    assert drops == {"BTC-USD": 8, "ETH-USD": 2, "SOL-USD": 8, "TSLA": 5}
    views = {s: service.rules(s)["drop"] for s in ("BTC-USD", "ETH-USD", "TSLA")}
    assert [(v.source, v.overridden) for v in views.values()] == [
        ("group:crypto", False),
        ("ETH-USD", True),
        ("default", False),
    ]
    change = service.reset_rule("ETH-USD", "drop", ALICE)  # back to its group's, not the default
    assert (change.old["threshold_pct"], change.new["threshold_pct"]) == (2, 8)


def test_a_group_mute_silences_its_members_only(service: Controls):
    service.change_group("semis", ALICE, add=["NVDA", "AMD"])
    service.mute("group:semis", ALICE, duration=timedelta(hours=2), reason="conference")
    got = _read(service, "NVDA", "AMD", "TSLA")
    assert (got["NVDA"].muted, got["AMD"].muted, got["TSLA"].muted) == (True, True, False)
    assert got["NVDA"].hushes[0].note == "muted by alice: conference"
    assert controls.muted_among(service.redis, ["NVDA", "TSLA"]) == {"NVDA"}
    service.change_group("semis", ALICE, remove=["AMD"])
    assert not _read(service, "AMD")["AMD"].muted
    service.delete_group("semis", ALICE)  # its mute goes with it
    assert not _read(service, "NVDA")["NVDA"].muted and service.redis.hget(keys.MUTES, "group:semis") is None
    assert [c.action for c in service.audit_log(symbol="group:semis")] == [
        "group_delete",
        "group_remove",
        "mute",
        "group_add",
    ]


def test_groups_refuse_what_cannot_be_right(service: Controls):
    with pytest.raises(ValueError, match="no group semis"):
        service.mute("group:semis", ALICE, duration=timedelta(hours=1))
    with pytest.raises(ValueError, match="no group semis"):
        service.set_rule("group:semis", "drop", ALICE, threshold_pct=3)
    with pytest.raises(ValueError, match="pattern is a symbol"):
        service.change_group("semis", ALICE, add=["**"])
    with pytest.raises(ValueError, match="group name"):
        service.change_group("Semis!", ALICE, add=["NVDA"])


def test_price_and_until_resolved_mutes_are_checked_against_the_symbols_state(service: Controls):
    with pytest.raises(ValueError, match="no open episode"):
        service.mute("TSLA", ALICE, until_resolved=True)
    live = SymbolState(ts=[1], prices=[260.0], volumes=[1.0], live={"drop": Episode({"id": "tsla-drop-1"})})
    service.redis.set(keys.symbol_state("TSLA"), states.encode(live))
    with pytest.raises(ValueError, match="already at 260, above 250"):
        service.mute("TSLA", ALICE, above=250)
    change = service.mute("TSLA", ALICE, until_resolved=True, unless=2)
    assert change.new["says"] == "until resolved (1 episode) unless 2x"
    (hush,) = _read(service, "TSLA")["TSLA"].hushes
    assert hush.episodes == {"tsla-drop-1"} and hush.unless == 2
    with pytest.raises(ValueError, match="one way"):
        service.mute("TSLA", ALICE, until_resolved=True, duration=timedelta(hours=1))


def test_a_mute_lifted_by_its_condition_is_audited_and_a_newer_one_survives(service: Controls):
    service.mute("TSLA", ALICE, below=100)
    (hush,) = _read(service, "TSLA")["TSLA"].hushes
    service.mute("TSLA", ALICE, duration=timedelta(hours=1))  # replaced before the price was reached
    assert service.lift(hush, hush.condition()) is None and service.mute_of("TSLA") is not None
    (newer,) = _read(service, "TSLA")["TSLA"].hushes
    change = service.lift(newer, "its episodes resolved")
    assert change is not None and service.mute_of("TSLA") is None
    assert change.actor.via == "tickwatch" and change.summary() == "unmuted: its episodes resolved"


def test_a_recurring_window_mutes_inside_its_occurrences_only():
    sunday = datetime(2026, 12, 6, tzinfo=UTC)  # a Sunday
    every, rest = parse_every(["sun", "23:00-01:00", "UTC", "maintenance"], now=sunday - timedelta(days=3))
    window = Window("win_0123456789ab", "group:crypto", every, "alice")
    assert rest == ["maintenance"] and every.seconds == 7200
    inside = [sunday + timedelta(hours=23), sunday + timedelta(hours=24, minutes=59, seconds=59)]
    outside = [sunday + timedelta(hours=22, minutes=59, seconds=59), sunday + timedelta(hours=25), sunday]
    assert [active_window(window, at) for at in inside] == [True, True]
    assert [active_window(window, at) for at in outside] == [False, False, False]
    assert [active_window(window, at) for at in inside + outside] == [True, True, False, False, False]  # cached


def test_a_window_keeps_its_local_time_across_daylight_saving():
    every = recurrence(
        "FREQ=DAILY;BYHOUR=9;BYMINUTE=30",
        timedelta(minutes=30),
        "America/New_York",
        now=datetime(2026, 10, 20, tzinfo=UTC),
    )
    window = Window("win_0123456789ac", "TSLA", every, "alice")
    assert active_window(window, datetime(2026, 10, 30, 13, 45, tzinfo=UTC))  # EDT: 09:45
    assert active_window(window, datetime(2026, 11, 3, 14, 45, tzinfo=UTC))  # EST: 09:45
    assert not active_window(window, datetime(2026, 11, 3, 13, 45, tzinfo=UTC))


@pytest.mark.parametrize(
    ("rule", "length", "why"),
    [
        ("FREQ=MINUTELY", timedelta(minutes=1), "at most hourly"),
        ("FREQ=DAILY;DTSTART=20200101", timedelta(hours=1), "without DTSTART"),
        ("FREQ=SOMETIMES", timedelta(hours=1), "not an RRULE"),
        ("FREQ=WEEKLY", timedelta(days=8), "1 minute to 7d"),
    ],
)
def test_windows_refuse_rules_that_cannot_work(rule: str, length: timedelta, why: str):
    with pytest.raises(ValueError, match=why):
        recurrence(rule, length)


def test_windows_are_stored_listed_and_removed_with_their_target(service: Controls):
    service.change_group("crypto", ALICE, add=["BTC-USD"])
    every, _ = parse_every(["day", "00:00-00:00"])
    service.mute("group:crypto", ALICE, every=every, reason="all day")
    assert _read(service, "BTC-USD")["BTC-USD"].muted
    (window,) = service.windows()
    assert window.target == "group:crypto" and window.says() == "every day 00:00-00:00 UTC"
    assert [c.action for c in service.unmute("group:crypto", ALICE)] == ["remove_window"]
    assert service.windows() == [] and not _read(service, "BTC-USD")["BTC-USD"].muted
