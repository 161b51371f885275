"""Watch DMs (pure): the message in each state, the catch-up DM, and which of two views of an alert is newer (a
retried or follow-up delivery may carry an older one)."""

from __future__ import annotations

import json
from datetime import timedelta

from pipeline.alerting.actions import WatchAction
from pipeline.alerting.dm_messages import CATCH_UP_WITH_BUTTONS, catch_up_message, watch_message
from pipeline.alerting.dms import newer
from tests.factories import AT, tsla_crash
from tests.pipeline.alerting.test_messages import actions, payload


def test_a_watch_dm_has_its_buttons_until_acknowledged_and_says_when_unwatched():
    alert = tsla_crash(watcher="U0ALICE001")
    text, blocks = watch_message(alert, "TSLA drop 3% in 10m")
    body = payload(blocks)
    assert text.startswith("📉 TSLA") and actions(body) == [WatchAction.ACKNOWLEDGE, WatchAction.UNWATCH]
    assert "Your watch: `TSLA drop 3% in 10m`" in json.dumps(body, ensure_ascii=False)
    acked = alert.model_copy(update={"acknowledged_by": "U0ALICE001", "status": "acknowledged"})
    assert actions(payload(watch_message(acked, "x")[1])) == [WatchAction.UNWATCH]
    gone = json.dumps(payload(watch_message(alert, "TSLA drop 3% in 10m", unwatched=True)[1]), ensure_ascii=False)
    assert "You stopped watching" in gone and WatchAction.UNWATCH.value not in gone


def test_a_catch_up_dm_lists_every_held_alert_the_first_with_buttons():
    held = [
        (tsla_crash(id=f"a{i}", symbol=f"S{i:02}", watcher="U0ALICE001"), "group:x drop 3% in 5m") for i in range(40)
    ]
    text, blocks = catch_up_message(held, "22:00-07:00")
    body = payload(blocks)
    assert text == "🌙 While you were away: 40 alerts"
    assert len([b for b in body if b["type"] == "actions"]) == CATCH_UP_WITH_BUTTONS
    words = json.dumps(body, ensure_ascii=False)
    assert "quiet hours (22:00-07:00)" in words and "*S00*" in words and "…and 5 more." in words


def test_an_older_view_never_replaces_a_newer_one():
    first = tsla_crash()
    deeper = first.model_copy(update={"peak_timestamp": first.peak_timestamp + timedelta(seconds=20)})
    ended = deeper.model_copy(update={"resolved_at": AT + timedelta(minutes=20), "status": "resolved"})
    assert newer(deeper, first) and not newer(first, deeper) and newer(deeper, deeper)
    assert newer(ended, deeper) and not newer(deeper, ended)
