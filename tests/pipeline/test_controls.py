"""Controls against the real Redis and Elasticsearch: overrides and mutes as workers read them, and the audit."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from pipeline import controls, keys, rule_words
from pipeline.audit import Actor
from pipeline.controls import Controls
from pipeline.settings import Settings

ALICE = Actor("alice", "slack", "U0ALICE01")
API = Actor("ci-token", "api")


def test_an_override_is_what_workers_read_and_is_audited(service: Controls):
    change = service.set_rule("tsla", "drop", ALICE, threshold_pct=3, window_seconds=600)
    assert (change.old["threshold_pct"], change.new["threshold_pct"], change.new["window_seconds"]) == (5, 3, 600)
    got = controls.controls_for(service.redis, service.settings, ["TSLA", "AAPL"])
    assert [(r.name, r.threshold_pct, r.window_seconds, r.cooldown_seconds) for r in got["TSLA"].rules] == [
        ("drop", 3.0, 600, 600),
        ("rise", 5.0, 300, 300),
        ("zscore", 0.0, 300, 300),
        ("volume", 0.0, 300, 300),
        ("gap", 0.0, 300, 300),
        ("relative", 0.0, 300, 300),
    ]
    assert [(r.name, r.threshold_pct) for r in got["AAPL"].rules] == [
        ("drop", 5.0),
        ("rise", 5.0),
        ("zscore", 0.0),
        ("volume", 0.0),
        ("gap", 0.0),
        ("relative", 0.0),
    ]

    service.set_rule("TSLA", "drop", API, threshold_pct=4)  # keeps the window set before
    rules = service.rules("TSLA")
    assert (rules["drop"].threshold_pct, rules["drop"].window_seconds, rules["drop"].overridden) == (4, 600, True)
    assert (
        rules["drop"].describe_fully() == "drop 4% in 10m, re-arms after 10m, confirmed by 2 ticks"
        and not rules["rise"].overridden
    )

    service.reset_rule("TSLA", "drop", ALICE)
    assert controls.controls_for(service.redis, service.settings, ["TSLA"])["TSLA"].rules[0].threshold_pct == 5.0

    log = service.audit_log(symbol="TSLA")
    assert [(c.action, c.actor.name, c.actor.via) for c in log] == [
        ("reset_rule", "alice", "slack"),
        ("set_rule", "ci-token", "api"),
        ("set_rule", "alice", "slack"),
    ]
    assert (log[1].old["threshold_pct"], log[1].new["threshold_pct"]) == (3, 4)
    assert log[2].summary() == (
        "drop 5% in 5m, re-arms after 5m, confirmed by 2 ticks → "
        "drop 3% in 10m, re-arms after 10m, confirmed by 2 ticks"
    )


def test_volatility_and_volume_rules_are_set_like_the_others(service: Controls):
    rule, change = rule_words.parse_rule_args(["zscore", "4"])
    service.set_rule("TSLA", rule, ALICE, **change)
    rule, change = rule_words.parse_rule_args(["volume", "5x", "15m"])
    service.set_rule("TSLA", rule, API, **change)
    got = {r.name: r for r in controls.controls_for(service.redis, service.settings, ["TSLA"])["TSLA"].rules}
    assert (got["zscore"].threshold_pct, got["zscore"].window_seconds) == (4.0, 300)
    assert (got["volume"].threshold_pct, got["volume"].window_seconds, got["volume"].cooldown_seconds) == (5, 900, 900)
    assert got["zscore"].confirm_ticks == service.settings.confirm_ticks  # confirmation follows the settings
    views = service.rules("TSLA")
    assert views["zscore"].describe_fully() == "zscore 4 sigma in 5m, re-arms after 5m, confirmed by 2 ticks"
    assert views["volume"].describe_fully() == "volume 5x in 15m, re-arms after 15m, confirmed by 2 ticks"
    assert (
        service.audit_log(symbol="TSLA")[0].summary()
        == "volume off → volume 5x in 15m, re-arms after 15m, confirmed by 2 ticks"
    )


def test_confirmation_per_symbol_and_rule(service: Controls):
    service.set_rule("TSLA", "drop", ALICE, **rule_words.parse_rule_args(["drop", "4%", "confirm", "3"])[1])
    service.set_rule("TSLA", "rise", ALICE, **rule_words.parse_rule_args(["rise", "4%", "confirm", "10s"])[1])
    got = {r.name: r for r in controls.controls_for(service.redis, service.settings, ["TSLA"])["TSLA"].rules}
    default = service.settings.confirm_ticks
    assert (got["drop"].confirm_ticks, got["drop"].confirm_seconds) == (3, 0)
    assert (got["rise"].confirm_ticks, got["rise"].confirm_seconds) == (default, 10)
    assert service.audit_log(symbol="TSLA")[1].new["confirm_ticks"] == 3
    service.set_rule("TSLA", "drop", ALICE, confirm_ticks=default)  # back to the settings: not pinned
    assert b"confirm" not in service.redis.hget(keys.RULES, "TSLA:drop")


def test_mutes_with_reason_and_expiry(service: Controls):
    service.mute("BTC-USD", ALICE, reason="exchange maintenance")
    service.mute("eth-usd", API, duration=timedelta(seconds=1))
    got = controls.controls_for(service.redis, service.settings, ["BTC-USD", "ETH-USD", "SOL-USD"])
    assert (got["BTC-USD"].muted, got["ETH-USD"].muted, got["SOL-USD"].muted) == (True, True, False)
    assert [(m.symbol, m.by) for m in service.mutes()] == [("ETH-USD", "ci-token"), ("BTC-USD", "alice")]
    assert service.mute_of("btc-usd").reason == "exchange maintenance"
    assert service.audit_log(symbol="BTC-USD")[0].summary() == "muted until unmuted: exchange maintenance"
    time.sleep(1.1)
    assert controls.controls_for(service.redis, service.settings, ["ETH-USD"])["ETH-USD"].muted is False
    assert [m.symbol for m in service.mutes()] == ["BTC-USD"]
    assert service.unmute("ETH-USD", ALICE) == []  # expired: nothing to undo, nothing audited
    (change,) = service.unmute("btc-usd", ALICE)
    assert change.old["reason"] == "exchange maintenance" and change.new is None
    assert service.mutes() == []
    assert [c.action for c in service.audit_log()] == ["unmute", "mute", "mute"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.set_rule("TSLA", "spike", ALICE, threshold_pct=3), "unknown rule"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, threshold_pct=-1), "percentage from 0"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, threshold_pct=100), "percentage from 0"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, window_seconds=0), "window"),
        (lambda s: s.set_rule("TSLA", "zscore", ALICE, threshold_pct=0.5), "k sigmas from 1"),
        (lambda s: s.set_rule("TSLA", "volume", ALICE, threshold_pct=1), "multiple of the usual volume"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, confirm_ticks=0), "confirm takes 1"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, confirm_seconds=7200), "confirm takes a duration"),
        (lambda s: s.set_rule("TSLA", "drop", ALICE, window_seconds=600, cooldown_seconds=60), "cooldown"),
        (lambda s: s.mute("not a symbol!", ALICE), "symbol"),
        (lambda s: s.mute("TSLA", ALICE, duration=timedelta(days=365)), "at most"),
        (lambda s: s.mute("TSLA", ALICE, until=datetime(2020, 1, 1, tzinfo=UTC)), "future"),
        (lambda s: s.mute("TSLA", ALICE, reason="x" * 501), "reason"),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(service: Controls, call, message: str):
    with pytest.raises(ValueError, match=message):
        call(service)
    assert service.redis.keys("*") == []
    assert service.audit_log() == []


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("zscore_k", 0.5, "k sigmas from 1"),
        ("volume_spike_x", 1, "multiple of the usual volume"),
        ("rise_pct", 100, "less than 100"),
        ("window_seconds", 2 * 86_400, "less than or equal to 86400"),
        ("confirm_ticks", 101, "less than or equal to 100"),
        ("confirm_seconds", 7200, "less than or equal to 3600"),
    ],
)
def test_default_rules_in_the_settings_obey_the_limits_of_per_symbol_ones(setting: str, value: float, message: str):
    with pytest.raises(ValidationError, match=message):
        Settings(**{setting: value})
    assert Settings(zscore_k=4, volume_spike_x=5).zscore_k == 4  # and 0 is off, the default


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("drop 3% 10m", ("drop", {"threshold_pct": 3.0, "window_seconds": 600})),
        ("RISE 8", ("rise", {"threshold_pct": 8.0})),
        ("drop off", ("drop", {"threshold_pct": 0.0})),
        (
            "drop 4% 2h30m cooldown 3h",
            ("drop", {"threshold_pct": 4.0, "window_seconds": 9000, "cooldown_seconds": 10800}),
        ),
        ("drop 4 15", ("drop", {"threshold_pct": 4.0, "window_seconds": 900})),  # bare windows are minutes
        ("zscore 4", ("zscore", {"threshold_pct": 4.0})),
        ("zscore 3.5sigma 10m", ("zscore", {"threshold_pct": 3.5, "window_seconds": 600})),
        ("volume 5x 15m", ("volume", {"threshold_pct": 5.0, "window_seconds": 900})),
        ("volume off", ("volume", {"threshold_pct": 0.0})),
        ("drop 5% confirm 3", ("drop", {"threshold_pct": 5.0, "confirm_ticks": 3})),
        (
            "drop 5% 10m cooldown 15m confirm 10s",
            ("drop", {"threshold_pct": 5.0, "window_seconds": 600, "cooldown_seconds": 900, "confirm_seconds": 10.0}),
        ),
    ],
)
def test_rule_arguments_as_people_type_them(words: str, expected):
    assert rule_words.parse_rule_args(words.split()) == expected


@pytest.mark.parametrize(
    "words",
    [
        "drop",
        "spike 3%",
        "drop three",
        "drop 3% 10m extra",
        "drop 3% soon",
        "volume 5%",
        "zscore 4x",
        "drop 5% confirm",
        "drop 5% confirm soon",
    ],
)
def test_bad_rule_arguments_say_the_form(words: str):
    with pytest.raises(ValueError, match=r"e\.g\.|unknown rule"):
        rule_words.parse_rule_args(words.split())


def test_a_confirmation_set_and_reset_shows_in_the_audit_and_everywhere(service: Controls):
    service.set_rule("TSLA", "drop", ALICE, confirm_seconds=10)
    assert service.rules("TSLA")["drop"].describe_fully().endswith("confirmed by 2 ticks held 10s")
    service.reset_rule("TSLA", "drop", ALICE)
    set_change, reset_change = reversed(service.audit_log(symbol="TSLA")[:2])
    assert set_change.summary().endswith("→ drop 5% in 5m, re-arms after 5m, confirmed by 2 ticks held 10s")
    assert reset_change.summary() == (
        "drop 5% in 5m, re-arms after 5m, confirmed by 2 ticks held 10s → drop 5% in 5m, re-arms after 5m, "
        "confirmed by 2 ticks"
    )
