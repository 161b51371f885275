"""Acknowledgements that tune thresholds, through signed Slack requests: "Acknowledge: too sensitive" is stored
and audited, `/threshold AAPL suggest` finds the threshold a labelled history calls for, and Apply sets it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from pipeline import store
from pipeline.alerting.actions import AlertAction, reason_value
from pipeline.schema import AckReason, Anomaly, SlackRef
from tests.bot.harness import BotServer, assert_valid_blocks
from tests.bot.world import ADMIN, CHANNEL, OTHER, anomaly, audit


def labelled(
    minute: int, low: float, reason: AckReason | None, *, ts: str | None = None, symbol: str = "TSLA"
) -> Anomaly:
    """A drop to `low` (0.92: -8 %) acknowledged with `reason`, stored with its Slack message at `ts`."""
    made = anomaly(symbol, minute, low).model_copy(
        update={
            "id": f"{symbol.lower()}-tune-{uuid.uuid4().hex[:6]}",
            "acknowledged_by": ADMIN if reason else None,
            "ack_reason": reason,
            "slack": SlackRef(channel=CHANNEL, ts=ts) if ts else None,
        }
    )
    return made


def store_all(backend: Any, *anomalies: Anomaly) -> None:
    store.write(backend.es, [store.anomaly_action(backend.indices, a) for a in anomalies])
    backend.es.indices.refresh(index=backend.indices.anomalies)


def test_acknowledge_with_a_reason_is_stored_audited_and_shown(bot: BotServer, backend: Any) -> None:
    fresh = labelled(40, 0.95, None, ts="1700000100.000001")
    store_all(backend, fresh)

    bot.click(
        AlertAction.ACKNOWLEDGE_AS,
        reason_value(fresh.id, AckReason.TOO_SENSITIVE),
        user=OTHER,
        channel=CHANNEL,
        ts="1700000100.000001",
        select=True,
    )

    [update] = bot.wait("chat.update")
    assert_valid_blocks(update.params["blocks"])
    shown = json.dumps(update.params["blocks"], ensure_ascii=False)
    assert f"Acknowledged by <@{OTHER}>" in shown and ": too sensitive." in shown
    assert AlertAction.ACKNOWLEDGE_AS not in shown  # the reason is given: the menu goes
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id=fresh.id)["_source"])
    assert (stored.acknowledged_by, stored.ack_reason) == (OTHER, AckReason.TOO_SENSITIVE)
    (change,) = [c for c in audit(backend) if c.action == "acknowledge" and c.new["anomaly"] == fresh.id]
    assert change.summary() == f"acknowledged {fresh.id}: too sensitive"


def test_a_forged_reason_changes_nothing(bot: BotServer, backend: Any) -> None:
    fresh = labelled(41, 0.95, None, ts="1700000200.000001")
    store_all(backend, fresh)
    _, hook = bot.click(
        AlertAction.ACKNOWLEDGE_AS,
        f"{fresh.id}|because",
        user=OTHER,
        channel=CHANNEL,
        ts="1700000200.000001",
        select=True,
    )
    assert "nothing was done" in bot.answer(hook)["text"]
    stored = Anomaly.model_validate(backend.es.get(index=backend.indices.anomalies, id=fresh.id)["_source"])
    assert stored.acknowledged_by is None


def test_suggest_finds_the_threshold_a_labelled_history_calls_for_and_apply_sets_it(bot: BotServer, backend: Any):
    store_all(
        backend,
        labelled(10, 0.968, AckReason.TOO_SENSITIVE, symbol="AAPL"),  # -3.2 %
        labelled(12, 0.964, AckReason.BAD_DATA, symbol="AAPL"),  # -3.6 %
        labelled(20, 0.936, AckReason.REAL, symbol="AAPL"),  # -6.4 %
        labelled(22, 0.919, AckReason.NEWS, symbol="AAPL"),  # -8.1 %
    )
    _, hook = bot.command("/threshold", "AAPL suggest", user=OTHER)
    answer = bot.answer(hook)
    text = answer["text"] + json.dumps(answer["blocks"], ensure_ascii=False)
    assert "`drop` 5%: 2 marked deserved, 2 too sensitive or bad data → *6.4%*" in text
    assert "alerts in the last 7 days instead of" in text or "alert in the last 7 days instead of" in text
    (button,) = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["value"] == "AAPL|drop|6.4"

    _, hook = bot.click(button["action_id"], button["value"], user=OTHER, channel=CHANNEL, ts="1.1")
    assert "Sorry" in bot.answer(hook)["text"] and not backend.controls.rules("AAPL")["drop"].overridden
    _, hook = bot.click(button["action_id"], button["value"], user=ADMIN, channel=CHANNEL, ts="1.1")
    applied = bot.answer(hook)
    assert applied["response_type"] == "in_channel" and backend.controls.rules("AAPL")["drop"].threshold_pct == 6.4
    _, hook = bot.click(button["action_id"], "AAPL|drop|NaN-ish", user=ADMIN, channel=CHANNEL, ts="1.1")
    assert "not a suggestion" in bot.answer(hook)["text"]
