"""The demo tour's pure pieces: Block Kit shown as text, and Slack requests built and signed like Slack's."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from rich.text import Text
from slack_sdk.signature import SignatureVerifier

from pipeline.alerting.actions import AlertAction
from pipeline.alerting.messages import AlertContext, StormView, alert_message, storm_message
from stack.slack_requests import block_actions, signed_headers, slash_command
from tests.factories import AT, tsla_crash
from tickwatch.demo.blocks_text import action_ids, blocks_text, mrkdwn

SECRET = "demo-secret-for-the-tests"


def shown(blocks: list[dict], users: dict[str, str] | None = None) -> str:
    """What the terminal shows (the markup must parse: Rich raises on a broken tag)."""
    return Text.from_markup(blocks_text(blocks, users)).plain


def as_dicts(message: tuple) -> list[dict]:
    return [block.to_dict() for block in message[1]]


def test_an_open_alert_shows_its_words_buttons_and_menu() -> None:
    blocks = as_dicts(alert_message(tsla_crash(), AlertContext(sparkline=[250.0, 240.0, 236.1], earlier_alerts_24h=2)))
    lines = shown(blocks).splitlines()
    assert lines[0].startswith("📉 TSLA")
    text = "\n".join(lines)
    assert "TSLA at 236.10" in text and "*" not in text  # mrkdwn bold became style, not asterisks
    actions = next(line for line in lines if "Acknowledge" in line)
    for label in ("Acknowledge", "Mute… ▾", "for 1 hour", "until tomorrow", "custom…", "History", "Adjust threshold"):
        assert label in actions
    assert "anomaly tsla-drop-1" in lines[-1]


def test_an_acknowledged_alert_names_who_and_loses_its_button() -> None:
    acked = tsla_crash(status="acknowledged", acknowledged_by="U0DEMO0001", acknowledged_at=AT)
    blocks = as_dicts(alert_message(acked, AlertContext()))
    text = shown(blocks, {"U0DEMO0001": "newcomer"})
    assert "Acknowledged by @newcomer" in text
    assert "Acknowledge " not in text.replace("Acknowledged", "")
    assert AlertAction.ACKNOWLEDGE not in action_ids(blocks)
    assert "Acknowledged by @U0DEMO0001" in shown(blocks)  # an unknown id is shown as the id


def test_action_ids_give_the_values_a_click_sends() -> None:
    blocks = as_dicts(alert_message(tsla_crash(), AlertContext()))
    ids = action_ids(blocks)
    assert ids[AlertAction.ACKNOWLEDGE] == "tsla-drop-1"
    assert ids[AlertAction.MUTE] == "tsla-drop-1|1h"
    storm = StormView("storm-1", AT, 5, [tsla_crash(id=f"s-{n}", symbol=f"S{n}") for n in range(6)])
    storm_blocks = as_dicts(storm_message(storm))
    assert action_ids(storm_blocks)[AlertAction.STORM_ACKNOWLEDGE_ALL] == "storm-1"
    assert "Acknowledge all" in shown(storm_blocks)


def test_mrkdwn_keeps_brackets_and_resolves_links_and_entities() -> None:
    text = Text.from_markup(mrkdwn("[red]x[/red] *bold* `code` <https://e.org/a|the link> &lt;3 <#C0ALERTS01|alerts>"))
    assert text.plain == "[red]x[/red] bold code the link <3 #alerts"
    assert any(span.style == "bold" for span in text.spans)


def test_slash_command_is_signed_like_slack_signs() -> None:
    body = slash_command(
        "/price", "TSLA 1h", user="U0DEMO0001", channel="C0ALERTS01", response_url="http://127.0.0.1:1/response/price"
    )
    headers = signed_headers(SECRET, body)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert not SignatureVerifier("another").is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    form = {key: values[0] for key, values in parse_qs(body).items()}
    assert (form["command"], form["text"], form["user_id"]) == ("/price", "TSLA 1h", "U0DEMO0001")
    assert form["response_url"] == "http://127.0.0.1:1/response/price"


def test_block_actions_carry_the_click_and_the_message() -> None:
    body = block_actions(
        AlertAction.ACKNOWLEDGE,
        "tsla-drop-1",
        user="U0DEMO0001",
        user_name="newcomer",
        channel="C0ALERTS01",
        ts="1795503535.126341",
        response_url="http://127.0.0.1:1/r/ack",
    )
    payload = json.loads(parse_qs(body)["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0DEMO0001" and payload["user"]["name"] == "newcomer"
    assert payload["container"] == {"type": "message", "channel_id": "C0ALERTS01", "message_ts": "1795503535.126341"}
    (action,) = payload["actions"]
    assert (action["action_id"], action["type"], action["value"]) == ("alert.acknowledge", "button", "tsla-drop-1")
    menu = json.loads(
        parse_qs(
            block_actions(
                AlertAction.MUTE,
                "tsla-drop-1|1h",
                user="U1",
                channel="C1",
                ts="1.2",
                response_url="http://x/r",
                select=True,
            )
        )["payload"][0]
    )
    assert menu["actions"][0]["selected_option"]["value"] == "tsla-drop-1|1h"
