"""The fake Slack must look like Slack to the real slack_sdk WebClient, or tests built on it prove nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from stack.fake_slack import FakeSlack, load_calls

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*TSLA* fell 7.9 % in 5 min"}}]
TS = re.compile(r"\d{10}\.\d{6}")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def client(fake: FakeSlack, token: str | None = "xoxb-test", **kwargs: Any) -> WebClient:
    return WebClient(token=token, base_url=fake.url, **kwargs)


def test_post_message_with_blocks_is_recorded_with_its_params(slack: FakeSlack) -> None:
    response = client(slack).chat_postMessage(channel="#market-alerts", text="TSLA fell", blocks=BLOCKS)

    assert response["ok"]
    assert re.fullmatch(r"C[0-9A-F]{10}", response["channel"])
    assert TS.fullmatch(response["ts"])
    assert response["message"]["blocks"] == BLOCKS
    [call] = slack.calls("chat.postMessage")
    assert call.params == {"channel": "#market-alerts", "text": "TSLA fell", "blocks": BLOCKS}
    assert call.authorization == "Bearer xoxb-test"
    assert call.content_type == "json"
    assert call.ok and not call.simulated_failure
    assert slack.calls("auth.test") == []


def test_form_encoded_params_are_parsed_like_json_ones(slack: FakeSlack) -> None:
    params = {"channel": "#market-alerts", "text": "form", "blocks": json.dumps(BLOCKS)}
    response = client(slack).api_call("chat.postMessage", params=params)

    assert response["ok"]
    [call] = slack.calls("chat.postMessage")
    assert call.content_type == "form"
    assert call.params == {"channel": "#market-alerts", "text": "form", "blocks": BLOCKS}


@pytest.mark.parametrize(("token", "error"), [(None, "not_authed"), ("not-a-slack-token", "invalid_auth")])
def test_calls_without_a_slack_token_are_rejected(slack: FakeSlack, token: str | None, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(slack, token=token).chat_postMessage(channel="#market-alerts", text="hi")

    assert raised.value.response["error"] == error
    [call] = slack.calls()
    assert not call.ok and call.status == 200


def test_rate_limited_call_is_retried_by_slack_sdk_and_succeeds(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", retry_after=0)
    web = client(slack, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])

    response = web.chat_postMessage(channel="#market-alerts", text="TSLA fell")

    assert response["ok"]
    first, second = slack.calls("chat.postMessage")
    assert (first.status, first.simulated_failure, first.response) == (429, True, {"ok": False, "error": "ratelimited"})
    assert second.ok and not second.simulated_failure
    assert second.params == first.params


def test_without_a_retry_handler_the_429_and_its_retry_after_reach_the_caller(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        client(slack, retry_handlers=[]).chat_postMessage(channel="#market-alerts", text="hi")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"


def test_fail_next_counts_down_per_method_then_serves_normally(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=503, retry_after=None, times=2)
    web = client(slack, retry_handlers=[])

    assert web.auth_test()["ok"]  # other methods are untouched
    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            web.chat_postMessage(channel="#market-alerts", text="hi")
        assert raised.value.response.status_code == 503
        assert "Retry-After" not in raised.value.response.headers
    assert web.chat_postMessage(channel="#market-alerts", text="hi")["ok"]
    assert [call.simulated_failure for call in slack.calls("chat.postMessage")] == [True, True, False]


def test_update_keeps_the_ts_and_ephemeral_and_auth_test_answer_like_slack(slack: FakeSlack) -> None:
    web = client(slack)
    posted = web.chat_postMessage(channel="#market-alerts", text="TSLA -5.2 %")

    updated = web.chat_update(channel=posted["channel"], ts=posted["ts"], text="TSLA -7.9 %", blocks=BLOCKS)
    ephemeral = web.chat_postEphemeral(channel="#market-alerts", user="U0123ABCDE", text="TSLA muted")
    identity = web.auth_test()

    assert (updated["channel"], updated["ts"]) == (posted["channel"], posted["ts"])
    assert updated["text"] == "TSLA -7.9 %"
    assert updated["message"]["blocks"] == BLOCKS
    assert TS.fullmatch(ephemeral["message_ts"]) and ephemeral["message_ts"] != posted["ts"]
    assert identity["user_id"] == "U0FAKE0001" and identity["team_id"] == "T0FAKE0001"
    assert slack.calls("auth.test")[0].content_type == "none"


@pytest.mark.parametrize(
    ("method", "body", "error"),
    [
        ("chat.postMessage", {"channel": "#market-alerts"}, "no_text"),
        ("chat.postMessage", {"channel": "#market-alerts", "text": ""}, "no_text"),
        ("chat.postMessage", {"text": "hi"}, "channel_not_found"),
        ("chat.update", {"channel": "C0123456789", "ts": "1700000000.000100", "text": "hi"}, "message_not_found"),
        ("chat.postEphemeral", {"channel": "#market-alerts", "text": "hi"}, "user_not_in_channel"),
        ("conversations.kick", {"channel": "#market-alerts", "user": "U0123ABCDE"}, "unknown_method"),
    ],
)
def test_invalid_calls_get_slacks_error_codes(slack: FakeSlack, method: str, body: dict[str, str], error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(slack).api_call(method, json=body)

    assert raised.value.response["error"] == error
    assert slack.calls(method)[0].response == {"ok": False, "error": error}


def test_unreadable_json_is_answered_not_crashed_on(slack: FakeSlack) -> None:
    request = urllib.request.Request(
        f"{slack.url}chat.postMessage",
        data=b"{not json",
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer xoxb-test"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"ok": False, "error": "invalid_json"}


def test_ts_are_unique_and_increasing(slack: FakeSlack) -> None:
    web = client(slack)
    stamps = [web.chat_postMessage(channel="#market-alerts", text=str(i))["ts"] for i in range(25)]

    as_numbers = [tuple(int(part) for part in ts.split(".")) for ts in stamps]
    assert as_numbers == sorted(set(as_numbers))
    assert all(TS.fullmatch(ts) for ts in stamps)


def test_wait_for_sees_calls_from_other_threads_and_times_out_saying_how_many_came(slack: FakeSlack) -> None:
    def post_later() -> None:
        time.sleep(0.2)
        client(slack).chat_postMessage(channel="#market-alerts", text="late")

    poster = threading.Thread(target=post_later)
    poster.start()
    started = time.monotonic()
    calls = slack.wait_for("chat.postMessage", 1, timeout=10)
    waited = time.monotonic() - started
    poster.join()

    assert calls[0].params["text"] == "late"
    assert waited < 5, "wait_for should wake on arrival, not at its timeout"
    with pytest.raises(TimeoutError, match="got 1"):
        slack.wait_for("chat.postMessage", 2, timeout=0.2)


def test_clear_forgets_calls_and_pending_failures(slack: FakeSlack) -> None:
    web = client(slack, retry_handlers=[])
    web.auth_test()
    slack.fail_next("chat.postMessage")

    slack.clear()

    assert slack.calls() == []
    assert web.chat_postMessage(channel="#market-alerts", text="hi")["ok"]


def test_record_to_appends_json_lines_without_the_token(tmp_path: Path) -> None:
    record = tmp_path / "nested" / "slack.jsonl"
    with FakeSlack(record_to=record) as fake:
        web = client(fake, token="xoxb-secret-123")
        web.chat_postMessage(channel="#market-alerts", text="hi", blocks=BLOCKS)
        client(fake).auth_test()
        live = fake.calls()

    loaded = load_calls(record)
    assert [(c.method, c.params, c.response, c.at) for c in loaded] == [
        (c.method, c.params, c.response, c.at) for c in live
    ]
    assert loaded[0].authorization == "Bearer xoxb-…"
    assert "secret" not in record.read_text()


def test_lifecycle_start_twice_stop_twice_and_port_released() -> None:
    fake = FakeSlack()
    url = fake.start()
    with pytest.raises(RuntimeError, match="already running"):
        fake.start()
    fake.stop()
    fake.stop()

    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}auth.test", timeout=2)


def test_command_line_prints_a_url_that_serves(tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    command = [sys.executable, "-m", "stack.fake_slack", "--port", "0", "--record-to", str(record)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/", url)
        assert WebClient(token="xoxb-test", base_url=url).auth_test()["ok"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert [call.method for call in load_calls(record)] == ["auth.test"]


MODAL = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Mute"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Mute TSLA"}}],
}


def test_views_open_update_and_push_keep_one_id_and_refuse_stale_hashes(slack: FakeSlack) -> None:
    web = client(slack)
    opened = web.views_open(trigger_id="12345.98765.abcd", view=MODAL)["view"]
    changed = {**MODAL, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "preview: 3 alerts"}}]}

    updated = web.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    pushed = web.views_push(trigger_id="12345.98765.abcd", view=MODAL)["view"]

    assert updated["id"] == opened["id"] and pushed["id"] != opened["id"]
    assert slack.view(opened["id"])["blocks"] == changed["blocks"]
    refused = [
        (lambda: web.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL), "hash_conflict"),
        (lambda: web.views_update(view_id="V404", view=MODAL), "not_found"),
        (lambda: web.views_open(trigger_id="", view=MODAL), "invalid_arguments"),
    ]
    for call, error in refused:
        with pytest.raises(SlackApiError) as raised:
            call()
        assert raised.value.response["error"] == error


def test_permalink_only_for_messages_it_has(slack: FakeSlack) -> None:
    web = client(slack)
    posted = web.chat_postMessage(channel="#market-alerts", text="TSLA fell")

    link = web.chat_getPermalink(channel=posted["channel"], message_ts=posted["ts"])["permalink"]

    assert link.endswith(f"/archives/{posted['channel']}/p{posted['ts'].replace('.', '')}")
    with pytest.raises(SlackApiError) as raised:
        web.chat_getPermalink(channel=posted["channel"], message_ts="1700000000.000001")
    assert raised.value.response["error"] == "message_not_found"


def test_files_upload_v2_posts_the_bytes_to_the_fakes_own_upload_url(slack: FakeSlack) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

    done = client(slack).files_upload_v2(
        channel="C0123456789", filename="tsla.png", content=png, title="TSLA 1h", initial_comment="TSLA"
    )

    [url_call] = slack.calls("files.getUploadURLExternal")
    [upload] = slack.calls("files.upload_bytes")
    [complete] = slack.calls("files.completeUploadExternal")
    file_id = url_call.response["file_id"]
    assert url_call.response["upload_url"].startswith(slack.url.removesuffix("api/"))
    assert upload.ok and upload.params == {"file_id": file_id, "length": len(png)}
    assert slack.uploaded(file_id) == png
    assert complete.params["files"][0]["id"] == file_id and complete.params["channel_id"] == "C0123456789"
    assert done["file"]["title"] == "TSLA 1h"


def test_completing_an_upload_whose_bytes_never_came_fails(slack: FakeSlack) -> None:
    web = client(slack)
    file_id = web.files_getUploadURLExternal(filename="x.png", length=10)["file_id"]

    with pytest.raises(SlackApiError) as raised:
        web.files_completeUploadExternal(files=[{"id": file_id, "title": "x"}], channel_id="C0123456789")

    assert raised.value.response["error"] == "file_not_found"


def test_response_url_records_what_is_posted_and_refuses_empty_messages(slack: FakeSlack) -> None:
    url = slack.response_url("cmd-1")

    def post(body: bytes) -> int:
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert post(json.dumps({"text": "TSLA 250.10", "response_type": "ephemeral"}).encode()) == 200
    assert post(b"{}") == 400
    ok, empty = slack.calls("response_url")
    assert ok.params == {"text": "TSLA 250.10", "response_type": "ephemeral", "_name": "cmd-1"} and ok.ok
    assert not empty.ok
