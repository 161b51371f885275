"""What a watch and quiet hours are (pure): the grammar shared by Slack and the API, the checks, quiet hours in a
person's own time zone across midnight, and which watch applies to a symbol."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pipeline.settings import Settings
from pipeline.watches import QuietHours, new_watch, parse_watch_words, rules_for


def test_the_watch_grammar_and_its_refusals():
    made = parse_watch_words("U0ALICE001", ["group:Semis", "zscore", "5"], default_window=300)
    assert (made.target, made.rule, made.threshold_pct, made.window_seconds) == ("group:semis", "zscore", 5.0, 300)
    assert parse_watch_words("U0ALICE001", ["tsla", "drop", "3%", "10m"], 300).says() == "TSLA drop 3% in 10m"
    for words, why in [
        (["TSLA", "drop"], "expected"),
        (["TSLA", "drop", "off"], "above 0"),
        (["TSLA", "drop", "3%", "confirm", "3"], "a threshold and a window only"),
        (["TSLA", "zscore", "90"], "zscore threshold"),
        (["TSLA", "drop", "3%", "2d"], "window"),
        (["<!here>", "drop", "3%"], "symbol must be"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_watch_words("U0ALICE001", words, 300)
    with pytest.raises(ValueError, match="Slack user id"):
        new_watch("alice", "TSLA", "drop", 3.0, 300)


@pytest.mark.parametrize(
    ("span", "local", "quiet"),
    [
        ("22:00-07:00", "23:30", True),
        ("22:00-07:00", "06:59", True),
        ("22:00-07:00", "07:00", False),
        ("22:00-07:00", "12:00", False),
        ("12:00-13:00", "12:30", True),
        ("12:00-13:00", "13:00", False),
    ],
)
def test_quiet_hours_are_read_in_the_persons_own_time_zone(span: str, local: str, quiet: bool):
    tokyo = ZoneInfo("Asia/Tokyo")
    hour, minute = map(int, local.split(":"))
    at = datetime(2026, 12, 5, hour, minute, tzinfo=tokyo).astimezone(UTC)
    assert QuietHours.parse(span).quiet_at(at, tokyo) is quiet
    assert QuietHours.parse("off") is None


def test_a_persons_own_watch_on_a_symbol_beats_theirs_on_its_group():
    settings = Settings()
    own = new_watch("U0ALICE001", "NVDA", "drop", 3.0, 300)
    group = new_watch("U0ALICE001", "group:semis", "drop", 5.0, 300)
    other = new_watch("U0BOB00001", "group:semis", "drop", 5.0, 300)
    found = rules_for(
        ["NVDA", "AMD"],
        {"NVDA": ["group:semis"], "AMD": ["group:semis"]},
        {"NVDA": [own], "group:semis": [group, other]},
        settings,
    )
    assert {(w.user, w.target) for w, _ in found["NVDA"]} == {("U0ALICE001", "NVDA"), ("U0BOB00001", "group:semis")}
    assert {(w.user, w.target) for w, _ in found["AMD"]} == {
        ("U0ALICE001", "group:semis"),
        ("U0BOB00001", "group:semis"),
    }
    assert {rule.key for _, rule in found["NVDA"]} == {"drop@U0ALICE001", "drop@U0BOB00001"}
