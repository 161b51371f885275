"""Personal watches through signed Slack requests: /watch, /watches, /unwatch, quiet hours, the DM's buttons and
the App Home tab, against the real Redis behind the bot; careless and hostile input gets a usage line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline import keys
from pipeline.alerting import dms
from pipeline.alerting.actions import WatchAction
from pipeline.audit import Actor
from pipeline.watches import Watches, new_watch
from tests.bot.harness import BotServer
from tests.bot.world import ADMIN, OTHER
from tests.factories import tsla_crash


def say(bot: BotServer, command: str, text: str, user: str = OTHER) -> dict[str, Any]:
    ack, hook = bot.command(command, text, user=user)
    if ack.content:  # usage and help come in the ack itself
        return {"response_type": "ephemeral", "said": ack.text}
    answer = bot.answer(hook)
    return {**answer, "said": answer["text"] + json.dumps(answer.get("blocks", []), ensure_ascii=False)}


@pytest.fixture
def watches(backend: Any) -> Any:
    found = Watches(backend.redis, backend.settings)
    yield found
    for user in (ADMIN, OTHER):
        backend.redis.delete(keys.watches_of(user), keys.dm_recent(user))
    for key in backend.redis.scan_iter(keys.ROOT + "watches:*"):
        backend.redis.delete(key)


def test_a_person_watches_lists_sets_quiet_hours_and_unwatches(bot: BotServer, backend: Any, watches: Any) -> None:
    made = say(bot, "/watch", "tsla drop 3% 10m")
    assert made["response_type"] == "ephemeral" and "You now watch `TSLA drop 3% in 10m`" in made["said"]
    assert "channel mutes do not silence them" in made["said"]
    again = say(bot, "/watch", "TSLA drop 4%")
    assert "(was `TSLA drop 3% in 10m`)" in again["said"]  # one watch per target and rule: replaced
    say(bot, "/watch", "group:semis zscore 5")
    assert [w.says() for w in watches.of_user(OTHER)] == ["TSLA drop 4% in 5m", "group:semis zscore 5 sigma in 5m"]
    assert watches.of_user(ADMIN) == []  # personal: nobody else's list changed

    bot.slack.users[OTHER] = {"tz": "Asia/Tokyo"}
    quiet = say(bot, "/watch", "quiet 22:00-07:00")
    assert "Quiet hours 22:00-07:00 (Asia/Tokyo)" in quiet["said"]
    listed = say(bot, "/watches", "")["said"]
    assert "(2 of 50)" in listed and "Quiet hours: 22:00-07:00" in listed and "do not silence" in listed
    assert "Quiet hours off" in say(bot, "/watch", "quiet off")["said"]

    gone = say(bot, "/unwatch", "TSLA")
    assert "You no longer watch `TSLA drop 4% in 5m`" in gone["said"]
    assert "You do not watch *AAPL*" in say(bot, "/unwatch", "AAPL")["said"]
    assert [w.target for w in watches.of_user(OTHER)] == ["group:semis"]


def test_careless_and_hostile_watch_input_gets_usage_and_changes_nothing(
    bot: BotServer, backend: Any, watches: Any
) -> None:
    for text, why in [
        ("<!channel> drop 3%", "symbol must be"),
        ("TSLA drop", "a rule and a threshold"),
        ("TSLA drop 0%", "threshold above 0"),
        ("TSLA drop off", "threshold above 0"),
        ("TSLA drop 3% cooldown 5m", "a threshold and a window only"),
        ("TSLA drop 3% 30s", "from 1m"),
        ("TSLA sideways 3%", "unknown rule"),
        ("quiet 25:00-07:00", "HH:MM-HH:MM"),
        ("quiet 22:00-22:00", "HH:MM-HH:MM"),
    ]:
        assert why in say(bot, "/watch", text)["said"], text
    assert "unknown rule" in say(bot, "/unwatch", "TSLA <@U0ADMIN0001>")["said"]
    assert watches.of_user(OTHER) == [] and watches.quiet_of(OTHER) is None

    for i in range(backend.settings.max_watches_per_user):
        watches.add(new_watch(OTHER, f"S{i}", "drop", 3.0, 300))
    assert "you watch 50 rules already" in say(bot, "/watch", "TSLA drop 3%")["said"]


def test_the_dm_buttons_are_the_watchers_alone(bot: BotServer, backend: Any, watches: Any) -> None:
    watches.add(new_watch(OTHER, "TSLA", "drop", 3.0, 300))
    alert = tsla_crash(id="tsla-drop@U0OTHER0001-x", watcher=OTHER)
    record = dms.Record(alert, "TSLA", "TSLA drop 3% in 5m")
    dms.save(backend.redis, record)
    dms.show(backend.redis, backend.slack(), record)
    posted = dms.load(backend.redis, alert.id)
    assert posted.channel.startswith("D")  # the DM with the watcher

    _, hook = bot.click(WatchAction.ACKNOWLEDGE, alert.id, user=ADMIN, channel=posted.channel, ts=posted.ts)
    assert "not one of your watches'" in bot.answer(hook)["text"]
    assert dms.load(backend.redis, alert.id).anomaly.acknowledged_by is None

    bot.click(WatchAction.ACKNOWLEDGE, alert.id, user=OTHER, channel=posted.channel, ts=posted.ts)
    (update,) = bot.wait("chat.update")
    assert "Acknowledged by <@U0OTHER0001>" in json.dumps(update.params["blocks"])
    assert dms.load(backend.redis, alert.id).anomaly.acknowledged_by == OTHER

    bot.click(WatchAction.UNWATCH, alert.id, user=OTHER, channel=posted.channel, ts=posted.ts)
    updates = bot.wait("chat.update", 2)
    assert "You stopped watching `TSLA drop 3% in 5m`" in json.dumps(updates[-1].params["blocks"])
    assert watches.of_user(OTHER) == []


def test_app_home_lists_your_watches_mutes_and_alerts_with_their_buttons(
    bot: BotServer, backend: Any, watches: Any
) -> None:
    watches.add(new_watch(OTHER, "TSLA", "drop", 3.0, 600))
    backend.controls.mute("AAPL", Actor("other", "slack", OTHER), reason="<!here> earnings")
    alert = tsla_crash(id="tsla-drop@U0OTHER0001-y", watcher=OTHER)
    dms.save(backend.redis, dms.Record(alert, "TSLA", "TSLA drop 3% in 10m"))
    backend.redis.lpush(keys.dm_recent(OTHER), alert.id)

    assert bot.open_home(OTHER).status_code == 200
    (published,) = bot.wait("views.publish")
    assert published.params["user_id"] == OTHER
    home = bot.slack.home(OTHER)
    words = json.dumps(home["blocks"], ensure_ascii=False)
    assert "`TSLA drop 3% in 10m`" in words and "*AAPL* until unmuted" in words
    assert "&lt;!here&gt; earnings" in words and "<!here>" not in words  # escaped, never a ping
    buttons = {b["accessory"]["action_id"]: b["accessory"]["value"] for b in home["blocks"] if b.get("accessory")}
    assert buttons == {WatchAction.REMOVE: "TSLA|drop", WatchAction.UNMUTE: "AAPL", WatchAction.ACKNOWLEDGE: alert.id}

    bot.click_home(WatchAction.REMOVE, "TSLA|drop", user=OTHER, view_id=home["id"])
    bot.wait("views.publish", 2)
    assert watches.of_user(OTHER) == [] and "None yet" in json.dumps(bot.slack.home(OTHER)["blocks"])
    bot.click_home(WatchAction.UNMUTE, "AAPL", user=ADMIN, view_id=home["id"])  # not the admin's mute
    bot.wait("views.publish", 3)
    assert backend.controls.mute_of("AAPL") is not None
