"""The Slack bot end to end: signed requests to the real HTTP server, over the real Redis and Elasticsearch,
its Web API calls answered by the fake Slack. Each test asserts the calls made and the state left behind.

The buttons on alert messages, their modals and the storm buttons; the stored world they share is in
world.py, the server in conftest.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.enums import BlockId, ModalAction, ModalCallback
from pipeline import store
from pipeline.alerting import anomalies, storms
from pipeline.alerting.actions import AlertAction, MuteChoice
from pipeline.keys import MUTES, RULES
from pipeline.schema import Anomaly, SlackRef
from tests.bot.harness import BotServer, assert_valid_blocks
from tests.bot.world import (
    ADMIN,
    CHANNEL,
    OTHER,
    alert_ref,
    anomaly,
    audit,
)
from tests.conftest import wait_for

# --- alert buttons ----------------------------------------------------------------------------------


def test_acknowledge_records_who_and_edits_the_alert_in_place(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")

    ack, _ = bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-30", user=OTHER, channel=ref.channel, ts=ref.ts)

    assert ack.status_code == 200
    [update] = bot.wait("chat.update")
    assert update.ok and (update.params["channel"], update.params["ts"]) == (ref.channel, ref.ts)
    assert_valid_blocks(update.params["blocks"])
    assert f"Acknowledged by <@{OTHER}>" in json.dumps(update.params["blocks"])
    buttons = [e["action_id"] for b in update.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert AlertAction.ACKNOWLEDGE not in buttons and AlertAction.ACKNOWLEDGE_AS in buttons  # a reason may follow
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id="tsla-drop-30")["_source"])
    assert (stored.status, stored.acknowledged_by) == ("acknowledged", OTHER)


def test_acknowledging_an_alert_slack_lost_posts_it_anew_and_stores_where(bot: BotServer, backend: Any) -> None:
    lost = anomaly("TSLA", 60, 0.97).model_copy(
        update={"id": f"tsla-lost-{uuid.uuid4().hex[:6]}", "slack": SlackRef(channel=CHANNEL, ts="1700000000.000001")}
    )
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

    bot.click(
        AlertAction.MUTE,
        MuteChoice.ONE_HOUR.value_for("tsla-drop-30"),
        user=ADMIN,
        channel=ref.channel,
        ts=ref.ts,
        select=True,
    )

    [note] = bot.wait("chat.postMessage")
    assert note.params["thread_ts"] == ref.ts and note.params["channel"] == ref.channel
    assert "TSLA muted until" in note.params["text"]
    mute = backend.controls.mute_of("TSLA")
    assert mute is not None and timedelta(minutes=59) < mute.until - datetime.now(UTC) <= timedelta(hours=1)


def test_custom_mute_opens_a_modal_whose_submission_mutes(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")

    bot.click(
        AlertAction.MUTE,
        MuteChoice.CUSTOM.value_for("tsla-drop-30"),
        user=ADMIN,
        channel=ref.channel,
        ts=ref.ts,
        select=True,
    )
    [opened] = bot.wait("views.open")
    view = opened.response["view"]
    assert view["callback_id"] == ModalCallback.MUTE and opened.ok
    assert_valid_blocks(view["blocks"])
    assert backend.redis.hgetall(MUTES) == {}  # nothing until it is submitted

    ack = bot.in_modal(
        view,
        user=ADMIN,
        values={
            BlockId.DURATION: {ModalAction.DURATION: {"type": "static_select", "selected_option": {"value": "3d"}}},
            BlockId.REASON: {ModalAction.REASON: {"type": "plain_text_input", "value": "exchange maintenance"}},
        },
    )

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


def test_adjust_threshold_previews_in_the_modal_then_saves_and_confirms_in_thread(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")
    bot.click(AlertAction.ADJUST_THRESHOLD, "tsla-drop-80", user=ADMIN, channel=ref.channel, ts=ref.ts)
    [opened] = bot.wait("views.open")
    view = opened.response["view"]
    assert_valid_blocks(view["blocks"])
    inputs = {block.get("block_id"): block for block in view["blocks"]}
    assert inputs[BlockId.THRESHOLD]["element"]["initial_value"] == "5"
    assert inputs[BlockId.WINDOW]["element"]["initial_value"] == "5m"
    typed = {
        BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": "3"}},
        BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "5m"}},
    }

    bot.in_modal(view, user=ADMIN, values=typed, action_id=ModalAction.PREVIEW)
    [updated] = bot.wait("views.update")
    assert updated.ok and updated.params["view_id"] == view["id"]
    assert "would have raised *2* alerts" in json.dumps(updated.params["view"]["blocks"])
    assert backend.redis.hgetall(RULES) == {}

    ack = bot.in_modal(view, user=ADMIN, values=typed)
    assert ack.status_code == 200
    [note] = bot.wait("chat.postMessage")
    assert (
        note.params["thread_ts"] == ref.ts
        and "drop 5% in 5m, re-arms after 5m, confirmed by 2 ticks → drop 3% in 5m," in note.params["text"]
    )
    assert backend.controls.rules("TSLA")["drop"].threshold_pct == 3.0
    assert next(c.action for c in audit(backend) if c.symbol == "TSLA") == "set_rule"


def test_adjusting_a_volume_rule_speaks_its_unit_and_checks_its_bounds(bot: BotServer, backend: Any) -> None:
    spike = anomaly("TSLA", 90, 1.0).model_copy(
        update={
            "id": f"tsla-volume-{uuid.uuid4().hex[:6]}",
            "rule": "volume",
            "threshold_pct": 5.0,
            "volume_ratio": 6.3,
        }
    )
    store.write(backend.es, [store.anomaly_action(backend.indices, spike)])
    backend.es.indices.refresh(index=backend.indices.anomalies)
    ref = alert_ref(backend, "tsla-drop-80")
    anomalies.record_slack_ref(backend.es, backend.indices, spike, ref)  # as if the spike's alert were posted there
    bot.click(AlertAction.ADJUST_THRESHOLD, spike.id, user=ADMIN, channel=ref.channel, ts=ref.ts)
    view = bot.wait("views.open")[0].response["view"]
    threshold_block = next(b for b in view["blocks"] if b.get("block_id") == BlockId.THRESHOLD)
    assert threshold_block["label"]["text"].startswith("Volume threshold (\u00d7 the usual")
    assert threshold_block["element"]["initial_value"] == f"{bot.settings.volume_spike_x:g}"  # the rule now

    def submit(value: str) -> Any:
        return bot.in_modal(
            view,
            user=ADMIN,
            values={
                BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": value}},
                BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "15m"}},
            },
        )

    refused = submit("2000").json()
    assert refused["response_action"] == "errors" and "at most 1000" in refused["errors"][BlockId.THRESHOLD]
    assert backend.redis.hgetall(RULES) == {}

    assert submit("200").status_code == 200  # a multiple over 100 is fine for volume
    [note] = bot.wait("chat.postMessage")
    assert "TSLA volume off → volume 200x in 15m" in note.params["text"]
    assert backend.controls.rules("TSLA")["volume"].threshold_pct == 200.0


def test_bad_modal_input_is_shown_next_to_the_field_and_saves_nothing(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-80")
    bot.click(AlertAction.ADJUST_THRESHOLD, "tsla-drop-80", user=ADMIN, channel=ref.channel, ts=ref.ts)
    view = bot.wait("views.open")[0].response["view"]

    ack = bot.in_modal(
        view,
        user=ADMIN,
        values={
            BlockId.THRESHOLD: {ModalAction.THRESHOLD: {"type": "number_input", "value": "150"}},
            BlockId.WINDOW: {ModalAction.WINDOW: {"type": "plain_text_input", "value": "soon"}},
        },
    )

    body = ack.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {BlockId.THRESHOLD, BlockId.WINDOW}
    assert backend.redis.hgetall(RULES) == {}


def test_buttons_of_an_alert_no_longer_stored_say_so(bot: BotServer, backend: Any) -> None:
    _, hook = bot.click(AlertAction.HISTORY, "gone-drop-1", user=OTHER, channel=CHANNEL, ts="1.000001")

    assert "no longer stored" in bot.answer(hook)["text"]


def test_storm_buttons_acknowledge_all_and_mute_all(bot: BotServer, backend: Any) -> None:
    members = [anomaly("TSLA", 30, 0.96), anomaly("AAPL", 31, 0.9)]
    storm_id = f"storm-{uuid.uuid4().hex[:8]}"
    store.write(
        backend.es,
        [
            store.anomaly_action(backend.indices, a.model_copy(update={"id": f"{storm_id}-{i}"}))
            for i, a in enumerate(members)
        ],
    )
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
        ("AAPL", "Mute all, on a market storm's message"),
        ("TSLA", "Mute all, on a market storm's message"),
    }


def stored(backend: Any, anomaly_id: str) -> Anomaly:
    return Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id=anomaly_id)["_source"])


def test_a_click_carrying_another_alerts_id_acts_on_nothing(bot: BotServer, backend: Any) -> None:
    ref = alert_ref(backend, "tsla-drop-30")  # the message of one alert...
    before = stored(backend, "tsla-drop-80")
    _, hook = bot.click(
        AlertAction.ACKNOWLEDGE, "tsla-drop-80", user=OTHER, channel=ref.channel, ts=ref.ts
    )  # ...its id
    assert "does not belong to this message" in bot.answer(hook)["text"]
    assert stored(backend, "tsla-drop-80").status == before.status


@pytest.mark.parametrize(
    "account", [{"is_restricted": True}, {"is_ultra_restricted": True}, {"is_stranger": True, "team_id": "T0OTHER01"}]
)
def test_guests_and_outsiders_may_read_but_not_acknowledge_or_change(bot: BotServer, backend: Any, account) -> None:
    guest = f"U0GUEST{uuid.uuid4().hex[:4].upper()}"
    bot.slack.users[guest] = account
    ref = alert_ref(backend, "tsla-drop-30")
    before = stored(backend, "tsla-drop-30")
    _, hook = bot.click(AlertAction.ACKNOWLEDGE, "tsla-drop-30", user=guest, channel=ref.channel, ts=ref.ts)
    assert "Guests and people from other organisations" in bot.answer(hook)["text"]
    assert stored(backend, "tsla-drop-30").acknowledged_by == before.acknowledged_by
    _, hook = bot.command("/mute", "TSLA 1h", user=guest)
    assert "Guests and people from other organisations" in bot.answer(hook)["text"]
    assert backend.controls.mute_of("TSLA") is None
    _, hook = bot.command("/price", "TSLA 1h", user=guest)
    assert "TSLA" in bot.answer(hook)["text"]  # reading stays open
