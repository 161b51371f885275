"""The Slack bot end to end: signed requests to the real HTTP server, over the real Redis and Elasticsearch,
its Web API calls answered by the fake Slack. Each test asserts the calls made and the state left behind.

Requests and slash commands, the manifest and threshold replays; the stored world they share is in
world.py, the server in conftest.py."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from slack_sdk import WebClient

from bot import answers
from bot.enums import Command
from bot.texts import COMMANDS, exported
from pipeline import store
from pipeline.alerting.actions import AlertAction
from pipeline.audit import Actor
from pipeline.calendars import Calendars
from pipeline.detect.backtest import replay
from pipeline.detect.detection import Rule
from pipeline.keys import MUTES, RULES, SLACK_WORKSPACE_URL
from pipeline.schema import SlackRef
from stack.slack_requests import signed_headers
from tests.bot.harness import SECRET, BotServer, assert_valid_blocks
from tests.bot.world import (
    ADMIN,
    CHANNEL,
    END,
    OTHER,
    START,
    STEP,
    alert_ref,
    anomaly,
    audit,
)
from tests.conftest import wait_for

# --- the door: signatures ---------------------------------------------------------------------------


def test_unsigned_wrongly_signed_and_stale_requests_get_401_and_change_nothing(bot: BotServer, backend: Any) -> None:
    stale = str(int(time.time()) - 6 * 60)
    answers = [
        bot.command("/mute", "TSLA 2h", user=ADMIN, signed=False)[0],
        bot.command("/mute", "TSLA 2h", user=ADMIN, secret="not-the-secret")[0],
        bot.command("/mute", "TSLA 2h", user=ADMIN, timestamp=stale)[0],
        bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-30", user=ADMIN, channel=CHANNEL, ts="1.2", signed=False)[0],
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 401]
    time.sleep(0.3)  # anything wrongly let through would have acted by now
    assert backend.redis.hgetall(MUTES) == {}
    assert bot.slack.calls() == []
    assert not any(change.symbol == "TSLA" and change.action == "mute" for change in audit(backend))


def test_healthz(bot: BotServer) -> None:
    assert bot.http.get(f"{bot.url}/healthz").json() == {"status": "ok"}


# --- slash commands ---------------------------------------------------------------------------------


def test_price_acks_at_once_then_answers_through_the_response_url(bot: BotServer, backend: Any) -> None:
    ack, hook = bot.command("/price", "tsla 2h", user=OTHER)

    assert ack.status_code == 200 and ack.text == ""
    answer = bot.answer(hook)
    assert answer["response_type"] == "ephemeral"
    assert_valid_blocks(answer["blocks"])
    text = json.dumps(answer["blocks"], ensure_ascii=False)
    assert answer["text"].startswith("TSLA 100.00")
    assert "*High* 100.00" in text and "*low* 92.00" in text
    assert f"{int((END - START) / STEP) + 1:,} ticks" in text
    assert text.count("📉") == 2  # both stored anomalies fall in the window
    market = Calendars({}).session_of("TSLA", datetime.now(UTC)).describe()  # e.g. "XNYS closed, opens Mon …"
    assert f"market: {market}" in text


def test_help_and_bad_input_are_answered_in_the_ack_body(bot: BotServer, backend: Any) -> None:
    for command in Command:
        ack, _ = bot.command(command, "help", user=OTHER)
        assert ack.status_code == 200, command
        body = ack.json()
        assert body["response_type"] == "ephemeral" and command.value in body["text"]
        assert_valid_blocks(body["blocks"])

    ack, _ = bot.command("/price", "TSLA 0m", user=OTHER)
    assert "a window must be longer than zero" in ack.json()["text"]
    assert "/price SYMBOL [window] [--chart]" in json.dumps(ack.json()["blocks"])
    ack, _ = bot.command("/threshold", "TSLA drop lots", user=ADMIN)
    assert "is not a threshold" in ack.json()["text"]
    time.sleep(0.2)
    assert bot.slack.calls() == []  # nothing else happened
    assert backend.redis.hgetall(RULES) == {}


def test_unknown_symbol_gets_the_closest_matches(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/price", "TSL", user=OTHER)

    assert "Did you mean *TSLA*" in bot.answer(hook)["text"] + json.dumps(bot.answer(hook)["blocks"])


def test_price_chart_is_uploaded_with_files_upload_v2(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/price", "TSLA 1h --chart", user=OTHER, channel="C0CHARTS01")

    bot.answer(hook)
    [complete] = bot.wait("files.completeUploadExternal")
    [upload] = bot.slack.calls("files.upload_bytes")
    assert complete.ok and complete.params["channel_id"] == "C0CHARTS01"
    png = bot.slack.uploaded(upload.params["file_id"])
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert complete.params["files"][0]["title"].startswith("TSLA · last 1h")


def test_without_the_charts_extra_a_chart_request_says_how_to_get_it(
    bot: BotServer, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "charts_installed", lambda: False)  # as if matplotlib were not installed
    _, hook = bot.command("/price", "TSLA 1h --chart", user=OTHER, channel="C0NOCHART1")

    assert bot.answer(hook)["text"].startswith("TSLA")  # the text answer comes all the same
    [notice] = wait_for(
        lambda: [c for c in bot.slack.calls("response_url") if "tickwatch[charts]" in c.params.get("text", "")],
        timeout=10,
        what="the missing-extra line",
    )
    assert notice.params["response_type"] == "ephemeral"
    assert not [c for c in bot.slack.calls("files.completeUploadExternal") if c.params["channel_id"] == "C0NOCHART1"]


def test_a_chart_of_a_symbol_with_a_slash_gets_a_plain_file_name(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/price", "EUR/USD 1h --chart", user=OTHER)

    assert bot.answer(hook)["text"].startswith("EUR/USD 1.08")
    [asked] = bot.wait("files.getUploadURLExternal")
    [complete] = bot.wait("files.completeUploadExternal")
    assert asked.params["filename"] == "EUR-USD-1h.png" and complete.ok


def test_anomalies_are_listed_newest_first_with_links_to_their_alerts(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/anomalies", "TSLA", user=OTHER)

    answer = bot.answer(hook)
    assert_valid_blocks(answer["blocks"])
    text = json.dumps(answer["blocks"], ensure_ascii=False)
    refs = [alert_ref(backend, anomaly_id) for anomaly_id in ("tsla-drop-80", "tsla-drop-30")]
    links = [f"/archives/{ref.channel}/p{ref.ts.replace('.', '')}" for ref in refs]
    assert all(link in text for link in links)
    assert text.index(links[0]) < text.index(links[1])  # newest first
    assert text.count("https://tickwatch-fake.slack.com/archives/") == 2  # the workspace auth.test names
    assert not bot.slack.calls("chat.getPermalink")  # links are built, not asked for one by one


def test_a_long_list_of_anomalies_costs_at_most_one_slack_call(bot: BotServer, backend: Any) -> None:
    channel = WebClient(token="xoxb-test", base_url=bot.slack.url).chat_postMessage(channel=CHANNEL, text="x")[
        "channel"
    ]
    many = [
        anomaly("AAPL", minute, 0.9).model_copy(update={"slack": SlackRef(channel=channel, ts=f"17.{minute}")})
        for minute in range(100, 123)
    ]
    store.write(backend.es, [store.anomaly_action(backend.indices, a) for a in many])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    backend.redis.delete(SLACK_WORKSPACE_URL)
    bot.slack.clear_calls()
    try:
        for _ in range(2):
            _, hook = bot.command("/anomalies", "AAPL 1d", user=OTHER)
            assert "/archives/" in json.dumps(bot.answer(hook)["blocks"])
        asked = [c.method for c in bot.slack.calls() if c.method not in ("response_url", "users.info")]
        assert asked == ["auth.test"]  # once, then cached: no call per listed anomaly
    finally:
        for a in many:
            backend.es.delete(index=backend.indices.anomalies, id=a.id, refresh=True)


def test_alerts_grouped_in_one_storm_message_share_one_link(bot: BotServer, backend: Any) -> None:
    posted = WebClient(token="xoxb-test", base_url=bot.slack.url).chat_postMessage(channel=CHANNEL, text="storm")
    ref = SlackRef(channel=posted["channel"], ts=posted["ts"])
    grouped = [anomaly("VOLM", minute, 0.9).model_copy(update={"slack": ref}) for minute in (100, 101)]
    store.write(backend.es, [store.anomaly_action(backend.indices, a) for a in grouped])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    bot.slack.clear_calls()

    _, hook = bot.command("/anomalies", "VOLM 1d", user=OTHER)

    text = json.dumps(bot.answer(hook)["blocks"])
    assert text.count(f"/archives/{ref.channel}/p{ref.ts.replace('.', '')}") == 2


def test_mute_mutes_and_unmute_unmutes_with_audit_and_mutes_lists_it(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/mute", "tsla 2h earnings call", user=ADMIN)

    answer = bot.answer(hook)
    assert answer["response_type"] == "in_channel" and f"<@{ADMIN}>" in answer["text"] + json.dumps(answer)
    mute = backend.controls.mute_of("TSLA")
    assert mute is not None and mute.reason == "earnings call" and mute.by == ADMIN.lower()
    assert timedelta(minutes=119) < mute.until - datetime.now(UTC) <= timedelta(hours=2)
    change = next(c for c in audit(backend) if c.symbol == "TSLA" and c.action == "mute")
    assert (change.actor.via, change.actor.id) == ("slack", ADMIN)

    _, hook = bot.command("/mutes", "", user=OTHER)
    listed = json.dumps(bot.answer(hook)["blocks"])
    assert "*TSLA* until" in listed and "earnings call" in listed

    _, hook = bot.command("/unmute", "TSLA", user=ADMIN)
    assert "unmuted" in bot.answer(hook)["text"]
    assert backend.controls.mute_of("TSLA") is None
    _, hook = bot.command("/unmute", "TSLA", user=ADMIN)
    assert "was not muted" in bot.answer(hook)["text"]
    _, hook = bot.command("/unmute", "TSL", user=ADMIN)
    assert "Did you mean TSLA?" in bot.answer(hook)["text"]


def test_people_outside_the_allow_list_are_refused_and_nothing_changes(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/mute", "TSLA 2h", user=OTHER)
    _, hook2 = bot.command("/threshold", "TSLA drop 3%", user=OTHER)

    for name in (hook, hook2):
        answer = bot.answer(name)
        assert answer["response_type"] == "ephemeral" and "Sorry" in answer["text"]
    assert backend.redis.hgetall(MUTES) == {} and backend.redis.hgetall(RULES) == {}
    # reads stay open to everyone
    _, hook = bot.command("/threshold", "TSLA", user=OTHER)
    assert "Rules for TSLA" in bot.answer(hook)["text"]


def test_threshold_preview_replays_seven_days_without_saving_then_set_saves(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/threshold", "TSLA drop 3% 5m --preview", user=OTHER)
    assert "can change mutes and thresholds" in bot.answer(hook)["text"]  # a replay of days: gated like a change
    _, hook = bot.command("/threshold", "TSLA drop 3% 5m --preview", user=ADMIN)

    preview = bot.answer(hook)["text"]
    assert "would have raised 2 alerts" in preview  # both dips (-4 %, -8 %) cross 3 %
    assert "(the current `drop 5% in 5m`: 1)" in preview  # only the -8 % one crosses the default 5 %
    assert backend.redis.hgetall(RULES) == {}

    _, hook = bot.command("/threshold", "TSLA drop 3% 10m", user=ADMIN)
    answer = bot.answer(hook)
    assert (
        answer["response_type"] == "in_channel"
        and "confirmed by 2 ticks → drop 3% in 10m, re-arms after 10m" in answer["text"]
    )
    rule = backend.controls.rules("TSLA")["drop"]
    assert (rule.threshold_pct, rule.window_seconds, rule.overridden) == (3.0, 600, True)
    _, hook = bot.command("/threshold", "TSLA", user=OTHER)
    assert "`drop 3% in 10m`" in json.dumps(bot.answer(hook)["blocks"])


# --- the manifest -----------------------------------------------------------------------------------


def test_the_manifest_declares_exactly_the_commands_the_app_answers(bot: BotServer) -> None:
    from tickwatch.commands.bot import MANIFEST

    manifest = yaml.safe_load(MANIFEST.read_text())
    declared = {entry["command"] for entry in manifest["features"]["slash_commands"]}

    assert declared == {command.value for command in Command}
    usage = exported(COMMANDS, "usage")  # what `help` and a usage error say
    for entry in manifest["features"]["slash_commands"]:
        assert f"{entry['command']} {entry.get('usage_hint', '')}".strip() == usage[entry["command"]]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"chat:write", "commands", "files:write"}
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    for command in declared:  # each one is answered (an unregistered command would get a 404)
        assert bot.command(command, "help", user=OTHER)[0].status_code == 200
    assert bot.command("/nonsense", "help", user=OTHER)[0].status_code == 404


def test_replay_from_bars_agrees_with_the_ticks_on_clear_moves(bot: BotServer, backend: Any) -> None:
    for threshold, expected in ((3, 2), (5, 1), (10, 0)):
        rule = Rule("drop", threshold, 300, 300)
        from_ticks = replay(backend.es, backend.indices, "TSLA", rule)
        from_bars = replay(backend.es, backend.indices, "TSLA", rule, max_ticks=100)
        assert (from_ticks.alerts, from_ticks.from_bars) == (expected, False)
        assert (from_bars.alerts, from_bars.from_bars) == (expected, True)
        assert from_ticks.points == int((END - START) / STEP) + 1
        assert from_bars.points == 2 * (int((END - START).total_seconds() // 60) + 1)
    assert replay(backend.es, backend.indices, "NOPE", Rule("drop", 3, 300, 300)).alerts == 0


def test_a_volume_rule_replays_the_stored_volumes(bot: BotServer, backend: Any) -> None:
    spike = Rule("volume", 5, 300, 300)

    assert replay(backend.es, backend.indices, "VOLM", spike).alerts == 1
    assert replay(backend.es, backend.indices, "VOLM", spike, max_ticks=100).alerts == 1  # from bars
    assert replay(backend.es, backend.indices, "VOLM", Rule("volume", 100, 300, 300)).alerts == 0
    assert replay(backend.es, backend.indices, "AAPL", spike).alerts == 0  # steady volume


def test_a_replay_leaves_out_the_ticks_detection_flagged_suspect(bot: BotServer, backend: Any) -> None:
    drop = Rule("drop", 3, 300, 300)  # VOLM's one -90 % tick is a flagged bad print: nothing else moves

    assert replay(backend.es, backend.indices, "VOLM", drop).alerts == 0
    assert replay(backend.es, backend.indices, "VOLM", drop, max_ticks=100).alerts == 0  # from bars


def test_a_failure_after_the_answer_is_reported_where_the_user_asked(bot: BotServer, backend: Any) -> None:
    bot.slack.fail_next("files.completeUploadExternal", status=500, retry_after=None)

    _, hook = bot.command("/price", "TSLA 1h --chart", user=OTHER)

    deadline = time.monotonic() + 10
    while len(said := [c for c in bot.slack.calls("response_url") if c.params["_name"] == hook]) < 2:
        assert time.monotonic() < deadline, said
        time.sleep(0.05)
    answer, failure = said
    assert answer.params["text"].startswith("TSLA")
    assert "Something went wrong" in failure.params["text"] and failure.params["response_type"] == "ephemeral"


def test_socket_mode_needs_an_app_token() -> None:
    import asyncio

    from bot.bolt import NotConfigured
    from bot.socket_mode import serve as serve_socket_mode
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        env.setenv("SLACK_SIGNING_SECRET", SECRET)
        env.delenv("SLACK_APP_TOKEN", raising=False)
        with pytest.raises(NotConfigured, match="SLACK_APP_TOKEN"):
            asyncio.run(serve_socket_mode())
    get_settings.cache_clear()


HOSTILE = "<!channel> <https://evil.example|click> & more"


def test_text_from_people_reaches_slack_escaped_not_as_a_ping_or_a_link(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/mute", f"TSLA 2h {HOSTILE}", user=ADMIN)
    answered = json.dumps(bot.answer(hook))
    _, hook = bot.command("/mutes", "", user=OTHER)
    listed = json.dumps(bot.answer(hook))
    for shown in (answered, listed):
        assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; more" in shown
        assert "<!channel>" not in shown and "<https://evil.example" not in shown
    assert backend.controls.mute_of("TSLA").reason == HOSTILE  # stored as typed; escaped where it is shown
    backend.controls.unmute("TSLA", Actor(name="test", via="cli"))


def test_a_body_over_a_mebibyte_is_refused_before_it_is_read_or_verified(bot: BotServer) -> None:
    huge = "text=" + "x" * (1024 * 1024 + 1)
    url = f"{bot.url}/slack/events"
    with httpx.Client(timeout=10) as own:  # refused mid-upload: the connection is closed, not reused
        assert own.post(url, content=huge).status_code == 413
        assert own.post(url, content=huge, headers=signed_headers(SECRET, huge)).status_code == 413  # no HMAC
    with httpx.Client(timeout=10) as own:
        chunked = own.post(url, content=iter([b"x" * 600_000, b"x" * 600_000]))
        assert chunked.status_code == 413  # no length declared: refused once past the cap


def test_previews_are_rate_limited_per_person(bot: BotServer) -> None:
    person = f"U0PREV{uuid.uuid4().hex[:5].upper()}"
    before = bot.settings.preview_rate_limit, bot.settings.slack_admin_users
    bot.settings.preview_rate_limit = "1/hour"  # read on each preview by the bot serving these settings
    bot.settings.slack_admin_users = [*before[1], person]
    try:
        _, hook = bot.command("/threshold", "TSLA drop 3% 5m --preview", user=person)
        assert "would have raised" in bot.answer(hook)["text"]
        _, hook = bot.command("/threshold", "TSLA drop 3% 5m --preview", user=person)
        assert "try again in" in bot.answer(hook)["text"]
    finally:
        bot.settings.preview_rate_limit, bot.settings.slack_admin_users = before
