"""The Slack bot end to end: signed requests to the real HTTP server, over the real Redis and Elasticsearch,
its Web API calls answered by the fake Slack. Each test asserts the calls made and the state left behind."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from redis import Redis
from slack_sdk import WebClient

from bot.enums import BlockId, Command, ModalAction, ModalCallback
from bot.texts import COMMANDS, exported
from pipeline import store, storms
from pipeline.alert_actions import AlertAction, MuteChoice
from pipeline.alerts import alert_context, record_slack_ref
from pipeline.backtest import replay
from pipeline.controls import MUTES_KEY, RULES_KEY, Controls
from pipeline.detection import Rule
from pipeline.messages import alert_message
from pipeline.schema import Anomaly, SlackRef, to_ms
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from tests.bot_harness import SECRET, BotServer, assert_valid_blocks, serve
from tests.conftest import lease_database, redis_url_for, release_database, wait_for

pytestmark = pytest.mark.e2e

ADMIN, OTHER = "U0ADMIN0001", "U0OTHER0001"
CHANNEL = "C0ALERTS01"
END = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
START = END - timedelta(hours=2)
STEP = timedelta(seconds=10)
DIPS = {30: 0.96, 80: 0.92}  # minute after START -> the low of a short dip (-4 % and -8 %)


def tsla_price(at: datetime) -> float:
    minute = (at - START).total_seconds() / 60
    for start, low in DIPS.items():
        if start <= minute < start + 2:
            return 100 * low
    return 100.0


def volm_volume(at: datetime) -> float:
    """VOLM trades 10 a tick, and 40 times that for two minutes after minute 90: one volume spike."""
    return 400.0 if 90 <= (at - START).total_seconds() / 60 < 92 else 10.0


def tick(symbol: str, at: datetime, price: float, offset: int) -> dict[str, Any]:
    return {"symbol": symbol, "ts": to_ms(at), "price": price, "volume": 10.0, "late": False, "partition": 0,
            "offset": offset, "published": None}


def anomaly(symbol: str, minute: int, low: float) -> Anomaly:
    at = START + timedelta(minutes=minute)
    change = round((low - 1) * 100, 4)
    return Anomaly(id=f"{symbol.lower()}-drop-{minute}", symbol=symbol, rule="drop", timestamp=at, price=100 * low,
                   reference_price=100.0, reference_timestamp=at - STEP, change_pct=change, threshold_pct=3.0,
                   window_seconds=300, peak_price=100 * low, peak_change_pct=change, peak_timestamp=at,
                   detected_at=at, volume=10.0)


@pytest.fixture(scope="module")
def bot(real_stack: Settings) -> Iterator[BotServer]:
    """One bot for the module: TSLA (two dips, two stored alerts with Slack messages) and AAPL (flat)."""
    db = lease_database(real_stack)
    prefix = f"tw-bot-{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=redis_url_for(real_stack, db), index_prefix=prefix,
                        es_url=real_stack.es_url)
    es, indices = store.connect(settings), store.Indices(prefix)
    Redis.from_url(settings.redis_url).flushdb()
    store.ensure_templates(es, indices)
    count = int((END - START) / STEP) + 1
    ticks = [tick("TSLA", START + i * STEP, tsla_price(START + i * STEP), i) for i in range(count)]
    ticks += [tick("AAPL", START + i * STEP, 200.0 + i % 3, i) for i in range(count)]
    ticks += [{**tick("VOLM", START + i * STEP, 50.0 + i % 2 / 100, i), "volume": volm_volume(START + i * STEP)}
              for i in range(count)]
    ticks += [tick("EUR/USD", START + i * STEP, 1.08, i) for i in range(count)]
    ticks.append({**tick("VOLM", START + timedelta(minutes=40, seconds=5), 5.0, count), "suspect_reason": "bad print"})
    store.write(es, [store.tick_action(indices, t) for t in ticks])
    with FakeSlack() as slack:
        settings = settings.model_copy(update={
            "slack_api_url": slack.url, "slack_bot_token": "xoxb-test", "slack_signing_secret": SECRET,
            "slack_admin_users": [ADMIN]})
        web = WebClient(token="xoxb-test", base_url=slack.url)
        for minute, low in DIPS.items():
            stored = anomaly("TSLA", minute, low)
            store.write(es, [store.anomaly_action(indices, stored)])
            es.indices.refresh(index=f"{prefix}-*")
            text, blocks = alert_message(stored, alert_context(es, indices, stored))
            posted = web.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks)
            record_slack_ref(es, indices, stored, SlackRef(channel=posted["channel"], ts=posted["ts"]))
        es.indices.refresh(index=indices.anomalies)
        with serve(settings, slack) as server:
            yield server
    for index in es.indices.get(index=f"{prefix}-*"):
        es.indices.delete(index=index)
    Redis.from_url(settings.redis_url).flushdb()
    release_database(real_stack, db)


@pytest.fixture
def backend(bot: BotServer) -> Iterator[Any]:
    """Per test: a clean slate of calls, mutes and rules (the stored history is shared)."""
    from bot.backend import Backend

    made = Backend.from_settings(bot.settings)
    bot.slack.clear_calls()
    made.redis.delete(MUTES_KEY, RULES_KEY)
    yield made
    made.redis.delete(MUTES_KEY, RULES_KEY)


def alert_ref(backend: Any, anomaly_id: str) -> SlackRef:
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id=anomaly_id)["_source"])
    assert stored.slack is not None
    return stored.slack


def audit(backend: Any) -> list[Any]:
    return Controls(backend.redis, backend.settings, backend.es, backend.indices).audit_log(limit=100)


# --- the door: signatures ---------------------------------------------------------------------------


def test_unsigned_wrongly_signed_and_stale_requests_get_401_and_change_nothing(bot: BotServer, backend: Any) -> None:
    stale = str(int(time.time()) - 6 * 60)
    answers = [bot.command("/mute", "TSLA 2h", user=ADMIN, signed=False)[0],
               bot.command("/mute", "TSLA 2h", user=ADMIN, secret="not-the-secret")[0],
               bot.command("/mute", "TSLA 2h", user=ADMIN, timestamp=stale)[0],
               bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-30", user=ADMIN, channel=CHANNEL, ts="1.2",
                         signed=False)[0]]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 401]
    time.sleep(0.3)  # anything wrongly let through would have acted by now
    assert backend.redis.hgetall(MUTES_KEY) == {}
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
    assert backend.redis.hgetall(RULES_KEY) == {}


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
    assert len(bot.slack.calls("chat.getPermalink")) == 2


def test_alerts_grouped_in_one_storm_message_share_one_link_lookup(bot: BotServer, backend: Any) -> None:
    posted = WebClient(token="xoxb-test", base_url=bot.slack.url).chat_postMessage(channel=CHANNEL, text="storm")
    ref = SlackRef(channel=posted["channel"], ts=posted["ts"])
    grouped = [anomaly("VOLM", minute, 0.9).model_copy(update={"slack": ref}) for minute in (100, 101)]
    store.write(backend.es, [store.anomaly_action(backend.indices, a) for a in grouped])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    bot.slack.clear_calls()

    _, hook = bot.command("/anomalies", "VOLM 1d", user=OTHER)

    text = json.dumps(bot.answer(hook)["blocks"])
    assert text.count(f"/archives/{ref.channel}/p{ref.ts.replace('.', '')}") == 2
    assert len(bot.slack.calls("chat.getPermalink")) == 1


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
    assert backend.redis.hgetall(MUTES_KEY) == {} and backend.redis.hgetall(RULES_KEY) == {}
    # reads stay open to everyone
    _, hook = bot.command("/threshold", "TSLA", user=OTHER)
    assert "Rules for TSLA" in bot.answer(hook)["text"]


def test_threshold_preview_replays_seven_days_without_saving_then_set_saves(bot: BotServer, backend: Any) -> None:
    _, hook = bot.command("/threshold", "TSLA drop 3% 5m --preview", user=OTHER)

    preview = bot.answer(hook)["text"]
    assert "would have raised 2 alerts" in preview  # both dips (-4 %, -8 %) cross 3 %
    assert "(the current `drop 5% in 5m`: 1)" in preview  # only the -8 % one crosses the default 5 %
    assert backend.redis.hgetall(RULES_KEY) == {}

    _, hook = bot.command("/threshold", "TSLA drop 3% 10m", user=ADMIN)
    answer = bot.answer(hook)
    assert answer["response_type"] == "in_channel" and "drop 5% in 5m → drop 3% in 10m" in answer["text"]
    rule = backend.controls.rules("TSLA")["drop"]
    assert (rule.threshold_pct, rule.window_seconds, rule.overridden) == (3.0, 600, True)
    _, hook = bot.command("/threshold", "TSLA", user=OTHER)
    assert "`drop 3% in 10m`" in json.dumps(bot.answer(hook)["blocks"])


# --- alert buttons ----------------------------------------------------------------------------------


def test_acknowledge_records_who_and_edits_the_alert_in_place(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")

    ack, _ = bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-30", user=OTHER, channel=ref.channel, ts=ref.ts)

    assert ack.status_code == 200
    [update] = bot.wait("chat.update")
    assert update.ok and (update.params["channel"], update.params["ts"]) == (ref.channel, ref.ts)
    assert_valid_blocks(update.params["blocks"])
    assert f"Acknowledged by <@{OTHER}>" in json.dumps(update.params["blocks"])
    assert AlertAction.ACKNOWLEDGE not in json.dumps(update.params["blocks"])  # no second Acknowledge
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id="tsla-drop-30")["_source"])
    assert (stored.status, stored.acknowledged_by) == ("acknowledged", OTHER)


def test_acknowledging_an_alert_slack_lost_posts_it_anew_and_stores_where(bot: BotServer, backend: Any) -> None:
    lost = anomaly("TSLA", 60, 0.97).model_copy(update={"id": f"tsla-lost-{uuid.uuid4().hex[:6]}",
                                                        "slack": SlackRef(channel=CHANNEL, ts="1700000000.000001")})
    store.write(backend.es, [store.anomaly_action(backend.indices, lost)])
    backend.es.indices.refresh(index=backend.indices.anomalies)

    bot.click(AlertAction.ACKNOWLEDGE, lost.id, user=OTHER, channel=CHANNEL, ts="1700000000.000001")

    [gone] = bot.wait("chat.update")
    [posted] = bot.wait("chat.postMessage")
    assert gone.response["error"] == "message_not_found" and posted.ok
    assert posted.params["channel"] == bot.settings.slack_channel
    assert f"Acknowledged by <@{OTHER}>" in json.dumps(posted.params["blocks"])
    new_ref = SlackRef(channel=posted.response["channel"], ts=posted.response["ts"])
    wait_for(lambda: alert_ref(backend, lost.id) == new_ref, timeout=10, what="the new message's ref stored")


def test_a_rate_limited_update_is_waited_out(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")
    bot.slack.fail_next("chat.update", retry_after=1)

    bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-80", user=ADMIN, channel=ref.channel, ts=ref.ts)

    limited, done = bot.wait("chat.update", 2)
    assert limited.status == 429 and done.ok
    assert done.at - limited.at >= 0.9  # Retry-After: 1


def test_mute_for_an_hour_from_the_alert_is_confirmed_in_its_thread(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")

    bot.click(AlertAction.MUTE, MuteChoice.ONE_HOUR.value_for("tsla-drop-30"), user=ADMIN, channel=ref.channel,
              ts=ref.ts, select=True)

    [note] = bot.wait("chat.postMessage")
    assert note.params["thread_ts"] == ref.ts and note.params["channel"] == ref.channel
    assert "TSLA muted until" in note.params["text"]
    mute = backend.controls.mute_of("TSLA")
    assert mute is not None and timedelta(minutes=59) < mute.until - datetime.now(UTC) <= timedelta(hours=1)


def test_custom_mute_opens_a_modal_whose_submission_mutes(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")

    bot.click(AlertAction.MUTE, MuteChoice.CUSTOM.value_for("tsla-drop-30"), user=ADMIN, channel=ref.channel,
              ts=ref.ts, select=True)
    [opened] = bot.wait("views.open")
    view = opened.response["view"]
    assert view["callback_id"] == ModalCallback.MUTE and opened.ok
    assert_valid_blocks(view["blocks"])
    assert backend.redis.hgetall(MUTES_KEY) == {}  # nothing until it is submitted

    ack = bot.in_modal(view, user=ADMIN, values={
        BlockId.DURATION: {ModalAction.DURATION: {"type": "static_select", "selected_option": {"value": "3d"}}},
        BlockId.REASON: {ModalAction.REASON: {"type": "plain_text_input", "value": "exchange maintenance"}}})

    assert ack.status_code == 200 and ack.text == ""
    [note] = bot.wait("chat.postMessage")
    assert note.params["thread_ts"] == ref.ts and "exchange maintenance" in note.params["text"]
    mute = backend.controls.mute_of("TSLA")
    assert mute is not None and mute.reason == "exchange maintenance"
    assert timedelta(days=2, hours=23) < mute.until - datetime.now(UTC) <= timedelta(days=3)


def test_history_answers_only_the_clicker_around_the_anomaly(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")

    _, hook = bot.click(AlertAction.HISTORY, "tsla-drop-80", user=OTHER, channel=ref.channel, ts=ref.ts)

    answer = bot.answer(hook)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert_valid_blocks(answer["blocks"])
    assert "Around the TSLA alert" in json.dumps(answer["blocks"], ensure_ascii=False)
    assert "*low* 92.00" in json.dumps(answer["blocks"])


def test_adjust_threshold_previews_in_the_modal_then_saves_and_confirms_in_thread(bot: BotServer,
                                                                                  backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")
    bot.click(AlertAction.ADJUST_THRESHOLD, "tsla-drop-80", user=ADMIN, channel=ref.channel, ts=ref.ts)
    [opened] = bot.wait("views.open")
    view = opened.response["view"]
    assert_valid_blocks(view["blocks"])
    inputs = {block.get("block_id"): block for block in view["blocks"]}
    assert inputs[BlockId.THRESHOLD]["element"]["initial_value"] == "5"
    assert inputs[BlockId.WINDOW]["element"]["initial_value"] == "5m"
    typed = {BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": "3"}},
             BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "5m"}}}

    bot.in_modal(view, user=ADMIN, values=typed, action_id=ModalAction.PREVIEW)
    [updated] = bot.wait("views.update")
    assert updated.ok and updated.params["view_id"] == view["id"]
    assert "would have raised *2* alerts" in json.dumps(updated.params["view"]["blocks"])
    assert backend.redis.hgetall(RULES_KEY) == {}

    ack = bot.in_modal(view, user=ADMIN, values=typed)
    assert ack.status_code == 200
    [note] = bot.wait("chat.postMessage")
    assert note.params["thread_ts"] == ref.ts and "drop 5% in 5m → drop 3% in 5m" in note.params["text"]
    assert backend.controls.rules("TSLA")["drop"].threshold_pct == 3.0
    assert next(c.action for c in audit(backend) if c.symbol == "TSLA") == "set_rule"


def test_adjusting_a_volume_rule_speaks_its_unit_and_checks_its_bounds(bot: BotServer, backend: Any) -> None:
    spike = anomaly("TSLA", 90, 1.0).model_copy(update={"id": f"tsla-volume-{uuid.uuid4().hex[:6]}", "rule": "volume",
                                                        "threshold_pct": 5.0, "volume_ratio": 6.3})
    store.write(backend.es, [store.anomaly_action(backend.indices, spike)])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    ref = alert_ref(backend, "tsla-drop-80")  # any message: the thread note goes under the clicked one
    bot.click(AlertAction.ADJUST_THRESHOLD, spike.id, user=ADMIN, channel=ref.channel, ts=ref.ts)
    view = bot.wait("views.open")[0].response["view"]
    threshold_block = next(b for b in view["blocks"] if b.get("block_id") == BlockId.THRESHOLD)
    assert threshold_block["label"]["text"].startswith("Volume threshold (\u00d7 the usual")
    assert threshold_block["element"]["initial_value"] == f"{bot.settings.volume_spike_x:g}"  # the rule now

    def submit(value: str) -> Any:
        return bot.in_modal(view, user=ADMIN, values={
            BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": value}},
            BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "15m"}}})

    refused = submit("2000").json()
    assert refused["response_action"] == "errors" and "at most 1000" in refused["errors"][BlockId.THRESHOLD]
    assert backend.redis.hgetall(RULES_KEY) == {}

    assert submit("200").status_code == 200  # a multiple over 100 is fine for volume
    [note] = bot.wait("chat.postMessage")
    assert "TSLA volume off → volume 200x in 15m" in note.params["text"]
    assert backend.controls.rules("TSLA")["volume"].threshold_pct == 200.0


def test_bad_modal_input_is_shown_next_to_the_field_and_saves_nothing(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")
    bot.click(AlertAction.ADJUST_THRESHOLD, "tsla-drop-80", user=ADMIN, channel=ref.channel, ts=ref.ts)
    view = bot.wait("views.open")[0].response["view"]

    ack = bot.in_modal(view, user=ADMIN, values={
        BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": "150"}},
        BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "soon"}}})

    body = ack.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {BlockId.THRESHOLD, BlockId.WINDOW}
    assert backend.redis.hgetall(RULES_KEY) == {}


def test_buttons_of_an_alert_no_longer_stored_say_so(bot: BotServer, backend: Any) -> None:
    _, hook = bot.click(AlertAction.HISTORY, "gone-drop-1", user=OTHER, channel=CHANNEL, ts="1.000001")

    assert "no longer stored" in bot.answer(hook)["text"]


def test_storm_buttons_acknowledge_all_and_mute_all(bot: BotServer, backend: Any) -> None:
    members = [anomaly("TSLA", 30, 0.96), anomaly("AAPL", 31, 0.9)]
    storm_id = f"storm-{uuid.uuid4().hex[:8]}"
    store.write(backend.es, [store.anomaly_action(backend.indices, a.model_copy(update={"id": f"{storm_id}-{i}"}))
                             for i, a in enumerate(members)])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    for i, member in enumerate(members):
        storms.put_member(backend.redis, storm_id, member.model_copy(update={"id": f"{storm_id}-{i}"}))
    posted = WebClient(token="xoxb-test", base_url=bot.slack.url).chat_postMessage(channel=CHANNEL, text="storm")
    storms.set_message_ref(backend.redis, storm_id, SlackRef(channel=posted["channel"], ts=posted["ts"]))
    bot.slack.clear_calls()

    bot.click(AlertAction.STORM_ACKNOWLEDGE_ALL, storm_id, user=ADMIN, channel=posted["channel"], ts=posted["ts"])
    [update] = bot.wait("chat.update")
    [note] = bot.wait("chat.postMessage")
    assert update.ok and (update.params["channel"], update.params["ts"]) == (posted["channel"], posted["ts"])
    assert_valid_blocks(update.params["blocks"])
    lines = json.dumps(update.params["blocks"], ensure_ascii=False)
    assert lines.count(f"\u2705 <@{ADMIN}>") == 2  # both members' lines say who acknowledged
    assert "acknowledged all 2 alerts" in note.params["text"] and note.params["thread_ts"] == posted["ts"]
    for i in range(2):
        stored = backend.es.get(index=backend.indices.anomalies, id=f"{storm_id}-{i}")["_source"]
        assert stored["acknowledged_by"] == ADMIN

    bot.click(AlertAction.STORM_MUTE_ALL, storm_id, user=ADMIN, channel=posted["channel"], ts=posted["ts"])
    bot.wait("chat.postMessage", 2)
    assert {(mute.symbol, mute.reason) for mute in backend.controls.mutes()} == {
        ("AAPL", "Mute all, on a market storm's message"), ("TSLA", "Mute all, on a market storm's message")}


# --- the manifest -----------------------------------------------------------------------------------


def test_the_manifest_declares_exactly_the_commands_the_app_answers(bot: BotServer) -> None:
    from tickwatch.bot_command import MANIFEST

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
