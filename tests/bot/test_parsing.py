"""The bot's pure parts: command parsing, modal input, mute ends, message limits, the replay count, the manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.enums import BlockId
from bot.interactive import InputErrors, mute_end, threshold_inputs
from bot.messages import anomalies_message, mutes_message, refused_message
from bot.parsing import (
    HELP,
    AnomaliesRequest,
    GroupRequest,
    MuteRequest,
    PriceRequest,
    SymbolRequest,
    ThresholdRequest,
    Usage,
    parse_anomalies,
    parse_group,
    parse_mute,
    parse_no_arguments,
    parse_price,
    parse_target_only,
    parse_threshold,
)
from bot.texts import COMMANDS, exported
from pipeline.alerting.actions import MuteChoice
from pipeline.alerting.messages import MAX_BLOCKS, MAX_SECTION_CHARS
from pipeline.detect.backtest import count_alerts
from pipeline.detect.detection import Rule, TickPoint
from pipeline.mutes import Mute, MuteAsk
from pipeline.schema import Anomaly, SlackRef
from tests.bot.harness import assert_valid_blocks
from tickwatch.commands.bot import manifest_text

H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tsla", PriceRequest("TSLA", H)),
        ("BTC-USD 2h30m", PriceRequest("BTC-USD", timedelta(hours=2, minutes=30))),
        ("AAPL 1d --chart", PriceRequest("AAPL", timedelta(days=1), chart=True)),
        ("help", HELP),
    ],
)
def test_price_accepts(text: str, expected: object) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "give a symbol"),
        ("TSLA 1h extra", "give a symbol"),
        ("TSLA 0s", "longer than zero"),
        ("TSLA 60d", "at most 31d"),
        ("TSLA soon", "number with a unit"),
        ("TSLA --bars", "unknown option --bars"),
        ("TS LA!", "number with a unit"),
        ("$$$", "symbol must be"),
        ("TSLA 5", "a unit: 5m, 5h or 5d"),
    ],
)
def test_price_refuses_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(Usage, match=reason):
        parse_price(text)


def test_anomalies_symbol_and_window_are_both_optional() -> None:
    assert parse_anomalies("") == AnomaliesRequest(None, timedelta(days=1))
    assert parse_anomalies("2h") == AnomaliesRequest(None, 2 * H)
    assert parse_anomalies("tsla 7d") == AnomaliesRequest("TSLA", timedelta(days=7))
    with pytest.raises(Usage):
        parse_anomalies("TSLA 1h more")


def test_mute_takes_an_optional_duration_then_the_reason() -> None:
    assert parse_mute("TSLA") == MuteRequest("TSLA", MuteAsk(H, reason=""))
    assert parse_mute("tsla 2h earnings call") == MuteRequest("TSLA", MuteAsk(2 * H, reason="earnings call"))
    assert parse_mute("TSLA 3 analysts downgrade") == MuteRequest("TSLA", MuteAsk(H, reason="3 analysts downgrade"))
    assert parse_mute("TSLA forever delisted") == MuteRequest("TSLA", MuteAsk(None, reason="delisted"))
    with pytest.raises(Usage, match="longer than zero"):
        parse_mute("TSLA 0m")
    with pytest.raises(Usage):
        parse_mute("")


def test_mute_takes_groups_and_every_kind_of_end() -> None:
    assert parse_mute("Group:Crypto 2h") == MuteRequest("group:crypto", MuteAsk(2 * H))
    assert parse_mute("TSLA until-resolved").ask == MuteAsk(None, until_resolved=True)
    assert parse_mute("TSLA until above 250 unless 2x earnings").ask == MuteAsk(
        None, above=250.0, unless=2.0, reason="earnings"
    )
    window = parse_mute("group:crypto every sun 00:00-02:00 UTC exchange maintenance").ask
    assert window.every is not None and window.every.seconds == 7200 and window.reason == "exchange maintenance"
    for bad, why in [
        ("TSLA until above", "until takes above or below"),
        ("TSLA until above cheap", "not a price"),
        ("TSLA 2h unless 1x", "above 1"),
        ("TSLA every someday 00:00-02:00", "days are mon"),
        ("TSLA every sun 25:00-02:00", "not a time of day"),
        ("group:no!such 2h", "group name"),
    ]:
        with pytest.raises(Usage, match=why):
            parse_mute(bad)


def test_group_lists_shows_and_changes() -> None:
    assert parse_group("") == GroupRequest()
    assert parse_group("Semis") == GroupRequest("semis")
    assert parse_group("semis add nvda *-USD") == GroupRequest("semis", "add", ("nvda", "*-USD"))
    assert parse_group("group:semis delete") == GroupRequest("semis", "delete")
    for bad, why in [
        ("semis rename x", "add, remove or delete"),
        ("semis add", "takes symbols"),
        ("semis delete x", "no members"),
    ]:
        with pytest.raises(Usage, match=why):
            parse_group(bad)


def test_threshold_shows_sets_resets_and_previews() -> None:
    assert parse_threshold("tsla") == SymbolRequest("TSLA")
    assert parse_threshold("TSLA drop 3% 10m") == ThresholdRequest(
        "TSLA", "drop", {"threshold_pct": 3.0, "window_seconds": 600}
    )
    assert parse_threshold("TSLA rise off --preview") == ThresholdRequest(
        "TSLA", "rise", {"threshold_pct": 0.0}, preview=True
    )
    assert parse_threshold("TSLA drop 2.5 cooldown 20m") == ThresholdRequest(
        "TSLA", "drop", {"threshold_pct": 2.5, "cooldown_seconds": 1200}
    )
    assert parse_threshold("TSLA zscore 4 confirm 3") == ThresholdRequest(
        "TSLA", "zscore", {"threshold_pct": 4.0, "confirm_ticks": 3}
    )
    assert parse_threshold("TSLA drop reset") == ThresholdRequest("TSLA", "drop", reset=True)
    for bad in ("", "TSLA --preview", "TSLA fall 3%", "TSLA drop", "TSLA drop lots", "TSLA drop reset --preview"):
        with pytest.raises(Usage):
            parse_threshold(bad)


def test_mutes_takes_no_arguments() -> None:
    assert parse_no_arguments("") is None and parse_no_arguments(" help ") is HELP
    with pytest.raises(Usage):
        parse_no_arguments("TSLA")


def test_mute_menu_ends() -> None:
    now = datetime(2026, 11, 24, 22, 15, tzinfo=UTC)
    assert mute_end(MuteChoice.ONE_HOUR, now) == now + H
    assert mute_end(MuteChoice.UNTIL_TOMORROW, now) == datetime(2026, 11, 25, tzinfo=UTC)
    with pytest.raises(ValueError):
        mute_end(MuteChoice.CUSTOM, now)


def _view(threshold: str | None, window: str | None) -> dict:
    return {
        "state": {
            "values": {
                BlockId.THRESHOLD: {"threshold_pct": {"type": "number_input", "value": threshold}},
                BlockId.WINDOW: {"window": {"type": "plain_text_input", "value": window}},
            }
        }
    }


def test_threshold_modal_input_is_read_or_refused_per_field() -> None:
    assert threshold_inputs(_view("3", "10m"), "drop") == (3.0, 600)
    assert threshold_inputs(_view("0", "90s"), "rise") == (0.0, 90)
    assert threshold_inputs(_view("200", "15m"), "volume") == (200.0, 900)  # a multiple, not a percentage
    for value, rule in (("200", "drop"), ("60", "zscore"), ("1", "volume")):  # each rule's own bounds
        with pytest.raises(InputErrors) as raised:
            threshold_inputs(_view(value, "5m"), rule)
        assert set(raised.value.errors) == {BlockId.THRESHOLD}, (value, rule)
    with pytest.raises(InputErrors) as raised:
        threshold_inputs(_view("-1", "later"), "drop")
    assert set(raised.value.errors) == {BlockId.THRESHOLD, BlockId.WINDOW}
    with pytest.raises(InputErrors) as raised:
        threshold_inputs(_view("3", "2d"), "drop")
    assert raised.value.errors == {BlockId.WINDOW: "a window is longer than zero and at most 1d"}
    with pytest.raises(InputErrors) as raised:
        threshold_inputs(_view(None, "5m"), "drop")
    assert set(raised.value.errors) == {BlockId.THRESHOLD}


def _anomaly(i: int) -> Anomaly:
    at = datetime(2026, 11, 24, 9, tzinfo=UTC) + timedelta(minutes=i)
    return Anomaly(
        id=f"sym{i}-drop-{'x' * 40}",
        symbol=f"SYMBOL{i:04d}.LONG",
        rule="drop",
        timestamp=at,
        price=90,
        reference_price=100,
        reference_timestamp=at,
        change_pct=-10,
        threshold_pct=5,
        window_seconds=300,
        peak_price=90,
        peak_change_pct=-10,
        peak_timestamp=at,
        detected_at=at,
        acknowledged_by="U0SOMEBODY1",
        slack=SlackRef(channel="C0ALERTS01", ts="1.1"),
    )


def test_long_lists_stay_within_slacks_limits() -> None:
    link = "https://tickwatch-fake.slack.com/archives/C0ALERTS01/p1700000000000100" + "x" * 40
    listed = anomalies_message("SYMBOL", timedelta(days=31), [(_anomaly(i), link) for i in range(200)], truncated=True)
    mutes = mutes_message([Mute(f"SYMBOL{i:05d}", None, "someone" * 5, "r" * 200, None) for i in range(500)])

    for message in (listed, mutes):
        blocks = message.payload()["blocks"]
        assert_valid_blocks(blocks)
        assert len(blocks) <= MAX_BLOCKS
        assert all(len(b["text"]["text"]) <= MAX_SECTION_CHARS for b in blocks if b["type"] == "section")
    assert "Showing the newest 25" in str(listed.payload()["blocks"][-1])


def test_replay_counts_one_alert_per_episode() -> None:
    minute = 60_000
    prices = [100.0] * 60
    prices[10:12] = [96.0, 96.0]  # -4 %
    prices[40:45] = [92.0, 91.0, 90.0, 92.0, 95.0]  # one episode reaching -10 %
    points = [TickPoint(i * minute, price) for i, price in enumerate(prices)]

    assert count_alerts("X", Rule("drop", 3, 300, 300), points) == (2, 60)
    assert count_alerts("X", Rule("drop", 5, 300, 300), points) == (1, 60)
    assert count_alerts("X", Rule("drop", 12, 300, 300), points) == (0, 60)
    assert count_alerts("X", Rule("rise", 3, 300, 300), points)[0] == 2  # the recoveries


def test_manifest_gets_the_request_url_everywhere() -> None:
    text = manifest_text("https://bot.example.org/", socket=True)

    # ten commands, events (the Home tab) and interactivity
    assert text.count("https://bot.example.org/slack/events") == 12
    assert "example.com" not in text and "socket_mode_enabled: true" in text
    assert manifest_text("https://bot.example.org/slack/events") == manifest_text("https://bot.example.org")
    with pytest.raises(ValueError, match="https"):
        manifest_text("http://bot.example.org")


@pytest.mark.parametrize(
    ("users", "channels", "expected"),
    [
        (["U0ADMIN01", "U0ADMIN02", "U0ADMIN03"], [], "only <@U0ADMIN01>, <@U0ADMIN02> or <@U0ADMIN03> can change"),
        ([], ["C0OPS0001"], "can only be changed in <#C0OPS0001>."),
        (
            ["U0ADMIN01"],
            ["C0OPS0001", "C0OPS0002"],
            "only <@U0ADMIN01> can change mutes and thresholds, and only in <#C0OPS0001> or <#C0OPS0002>.",
        ),
    ],
)
def test_a_refusal_names_who_may_change_and_where(users: list[str], channels: list[str], expected: str) -> None:
    text = refused_message(users, channels).blocks[0].text.text

    assert text.startswith(":lock: Sorry, ") and expected in text and "Nothing was changed." in text
    assert " by in " not in text and "`/price`" in text  # what they can still do


def test_every_usage_line_parses_with_the_words_it_names() -> None:
    """The examples of each `help` are accepted by the command's parser (zscore, volume and confirm too)."""
    parsers = {
        "/price": parse_price,
        "/anomalies": parse_anomalies,
        "/mute": parse_mute,
        "/unmute": parse_target_only,
        "/group": parse_group,
        "/mutes": parse_no_arguments,
        "/threshold": parse_threshold,
    }
    for command, parser in parsers.items():
        for example in exported(COMMANDS, "examples")[command]:
            name, _, text = example.partition(" ")
            assert name == command
            parser(text)  # raises Usage if the help shows something the parser refuses
    usage = exported(COMMANDS, "usage")["/threshold"]
    assert all(word in usage for word in ("RULE THRESHOLD", "cooldown", "confirm TICKS|DURATION", "--preview"))
    examples = " ".join(exported(COMMANDS, "examples")["/threshold"])
    assert all(f"TSLA {words}" in examples for words in ("zscore 4", "volume 5x", "drop 5% confirm 3"))


def test_anomaly_lines_use_each_rules_unit() -> None:
    spike = _anomaly(1).model_copy(
        update={"rule": "volume", "change_pct": 0.3, "peak_change_pct": 0.3, "volume_ratio": 6.34}
    )
    jump = _anomaly(2).model_copy(
        update={"rule": "zscore", "change_pct": -2.3, "peak_change_pct": -2.3, "zscore": -4.6}
    )

    listed = json.dumps(
        anomalies_message(None, timedelta(days=1), [(spike, None), (jump, None)], truncated=False).payload()["blocks"],
        ensure_ascii=False,
    )

    assert "📊 *SYMBOL0001.LONG* volume 6.3\u00d7 usual (+0.3 %)" in listed
    assert "📉 *SYMBOL0002.LONG* \u22122.3 % (4.6 \u03c3)" in listed
    assert "ack by <@U0SOMEBODY1>" in listed  # a Slack user id is a mention


def test_a_price_chart_marks_the_anomalies_in_red() -> None:
    import io

    import numpy as np
    from matplotlib.image import imread

    from pipeline.charts import price_chart
    from pipeline.history import Bar

    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    bars = [
        Bar(
            start=start + timedelta(minutes=i),
            open=100,
            high=101,
            low=99,
            close=100 - (i == 30) * 8,
            volume=10,
            ticks=6,
        )
        for i in range(60)
    ]

    def red_pixels(png: bytes) -> int:
        rgb = (imread(io.BytesIO(png))[..., :3] * 255).round()
        return int(np.all(np.abs(rgb - (214, 39, 40)) < 12, axis=-1).sum())  # matplotlib's tab:red

    assert red_pixels(price_chart("TSLA", bars)) == 0
    assert red_pixels(price_chart("TSLA", bars, marks=[(start + timedelta(minutes=30), 92.0)])) > 20
