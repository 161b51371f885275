"""Reminders of long mutes: who is due (pure), and the DM a worker sends once over the real stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline import keys
from pipeline.alerting import reminders
from pipeline.context import Context
from pipeline.mutes import Mute
from stack.fake_slack import FakeSlack
from tests.conftest import Namespace, wait_for

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def mute(target: str, made_ago: timedelta, ends_in: timedelta, by_id: str | None = "U0ALICE01") -> Mute:
    return Mute(target, NOW + ends_in, "alice", "earnings <soon>", NOW - made_ago, by_id=by_id)


def test_only_long_mutes_ending_within_the_lead_whose_author_slack_can_reach_are_due():
    found = [
        mute("DUE", 2 * 24 * HOUR, 20 * timedelta(minutes=1)),
        mute("SHORT", 2 * HOUR, 20 * timedelta(minutes=1)),  # a mute of hours: nobody forgets it
        mute("LATER", 24 * HOUR, 2 * 24 * HOUR),  # not yet
        mute("API", 2 * 24 * HOUR, 20 * timedelta(minutes=1), by_id=None),  # nobody to DM
        mute("ENDED", 2 * 24 * HOUR, -timedelta(minutes=1)),
        Mute("FOREVER", None, "alice", "", NOW - 30 * 24 * HOUR, by_id="U0ALICE01"),
    ]
    assert [m.symbol for m in reminders.due(found, NOW, HOUR)] == ["DUE"]
    text = reminders.text(found[0], NOW)
    assert "ends at 12:20 UTC, in 20 min" in text and "in force for 2 d" in text
    assert "&lt;soon&gt;" in text and "<soon>" not in text  # a reason reaches Slack escaped


def test_the_author_gets_one_dm_before_the_mute_ends(namespace: Namespace):
    ns = namespace
    now = datetime.now(UTC)
    due = Mute("TSLA", now + 20 * timedelta(minutes=1), "alice", "earnings", now - 2 * 24 * HOUR, by_id="U0ALICE01")
    short = Mute("AAPL", now + 20 * timedelta(minutes=1), "bob", "", now - HOUR, by_id="U0BOB0001")
    ns.redis.hset(keys.MUTES, mapping={"TSLA": due.encode(), "AAPL": short.encode()})
    with FakeSlack() as slack:
        ns.env.update({"SLACK_BOT_TOKEN": "xoxb-test", "TICKWATCH_SLACK_API_URL": slack.url})
        ns.worker(concurrency=1)
        (dm,) = slack.wait_for("chat.postMessage", 1, timeout=60)
        assert dm.params["channel"] == "U0ALICE01" and "Your mute of *TSLA* ends" in dm.params["text"]
        settings = ns.settings.model_copy(update={"slack_bot_token": "xoxb-test"})
        assert reminders.check_if_due(Context(settings), now + timedelta(minutes=2)) == 0  # claimed: never twice
        wait_for(lambda: not ns.redis.zcard(keys.TASKS_DUE), timeout=10, what="nothing left to send")
        assert len(slack.calls("chat.postMessage")) == 1
