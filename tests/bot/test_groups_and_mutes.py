"""/group, group thresholds and mutes, and every kind of mute through signed slash commands, against the real
stack behind the bot; the careless and hostile inputs get a usage line or an escaped answer."""

from __future__ import annotations

import json
from typing import Any

from pipeline.keys import GROUPS, MUTES
from tests.bot.harness import BotServer
from tests.bot.world import ADMIN, OTHER


def say(bot: BotServer, command: str, text: str, user: str = ADMIN) -> dict[str, Any]:
    """The answer, with `said`: all its words (the fallback text holds only the first line)."""
    _, hook = bot.command(command, text, user=user)
    answer = bot.answer(hook)
    return {**answer, "said": answer["text"] + json.dumps(answer.get("blocks", []), ensure_ascii=False)}


def test_a_group_is_made_given_a_rule_muted_on_a_schedule_and_listed(bot: BotServer, backend: Any) -> None:
    made = say(bot, "/group", "semis add tsla AAPL")
    assert made["response_type"] == "in_channel" and "added AAPL, TSLA" in made["said"]
    assert "*group:semis* — AAPL, TSLA" in say(bot, "/group", "", user=OTHER)["said"]

    assert "drop 8% in 5m" in say(bot, "/threshold", "group:semis drop 8%")["said"]
    shown = say(bot, "/threshold", "AAPL", user=OTHER)["said"]
    assert "`drop 8% in 5m`" in shown and "from group:semis" in shown

    window = say(bot, "/mute", "group:semis every sun 00:00-02:00 UTC exchange maintenance")
    assert window["response_type"] == "in_channel" and "every sun 00:00-02:00 UTC" in window["said"]
    listed = say(bot, "/mutes", "", user=OTHER)["said"]
    assert "*group:semis* every sun 00:00-02:00 UTC" in listed and "exchange maintenance" in listed

    group = say(bot, "/group", "semis", user=OTHER)["said"]
    assert "Rules: `drop 8% in 5m`" in group
    assert "unmuted" in say(bot, "/unmute", "group:semis")["said"]
    assert backend.controls.windows() == []


def test_price_and_break_through_mutes_and_what_they_refuse(bot: BotServer, backend: Any) -> None:
    answer = say(bot, "/mute", "TSLA until above 99999 unless 2x product launch")
    assert "until above 99999 unless 2x" in answer["said"]
    mute = backend.controls.mute_of("TSLA")
    assert (mute.above, mute.unless, mute.reason) == (99999.0, 2.0, "product launch")
    refused = say(bot, "/mute", "AAPL until-resolved")
    assert refused["response_type"] == "ephemeral" and "no open episode" in refused["said"]
    assert backend.controls.mute_of("AAPL") is None


def test_careless_and_hostile_text_gets_usage_or_is_escaped(bot: BotServer, backend: Any) -> None:
    for command, text, why in [
        ("/group", "<!channel> add TSLA", "group name"),
        ("/group", "semis add", "takes symbols"),
        ("/mute", "TSLA until below", "until takes above or below"),
        ("/mute", "group:semis 2h", "no group semis"),
        ("/mute", "TSLA every sun 00:00-02:00 Mars/Olympus", "unknown time zone"),
    ]:
        ack, hook = bot.command(command, text, user=ADMIN)
        said = (ack.text if ack.content else "") + json.dumps(bot.answer(hook) if "no group" in why else {})
        assert why in said, (command, text, said)
    assert backend.redis.hgetall(MUTES) == {} and backend.redis.hgetall(GROUPS) == {}

    say(bot, "/group", "cars add TSLA")
    answer = say(bot, "/mute", "group:cars 2h <!here> & <https://evil.example|click>")
    assert "<!here>" not in answer["said"]
    assert "&lt;!here&gt; &amp; &lt;https://evil.example|click&gt;" in answer["said"]


def test_people_outside_the_allow_list_cannot_change_groups(bot: BotServer, backend: Any) -> None:
    answer = say(bot, "/group", "semis add NVDA", user=OTHER)
    assert answer["response_type"] == "ephemeral" and "Sorry" in answer["said"]
    assert backend.redis.hgetall(GROUPS) == {}
