"""A running bot for tests: the real HTTP server (uvicorn in a thread) over a private index prefix and Redis
db, its Web API calls going to a FakeSlack, and requests signed like Slack signs them."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from slack_sdk.models.blocks import Block

from pipeline.alerting.messages import MAX_BLOCKS, MAX_SECTION_CHARS
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack, RecordedCall
from stack.slack_requests import (
    app_home_opened,
    block_actions,
    home_click,
    interaction,
    signed_headers,
    slack_user,
    slash_command,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def assert_valid_blocks(blocks: list[dict[str, Any]]) -> None:
    """Block Kit model validation plus the limits the models do not check."""
    assert 0 < len(blocks) <= MAX_BLOCKS
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        if raw["type"] == "section" and "text" in raw:
            assert len(raw["text"]["text"]) <= MAX_SECTION_CHARS
        if raw["type"] == "header":
            assert len(raw["text"]["text"]) <= 150


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class BotServer:
    settings: Settings
    slack: FakeSlack
    url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    # --- requests as Slack sends them -------------------------------------------------------------
    def post(
        self,
        body: str,
        *,
        timestamp: str | None = None,
        secret: str = SECRET,
        signed: bool = True,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> httpx.Response:
        headers = {"Content-Type": content_type}
        if signed:
            headers = signed_headers(secret, body, timestamp=timestamp, content_type=content_type)
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def command(
        self, command: str, text: str = "", *, user: str, channel: str = "C0ALERTS01", **post: Any
    ) -> tuple[httpx.Response, str]:
        """Send a slash command; returns the HTTP answer (the ack) and the name of its response_url."""
        hook = f"cmd-{uuid.uuid4().hex[:8]}"
        body = slash_command(command, text, user=user, channel=channel, response_url=self.slack.response_url(hook))
        return self.post(body, **post), hook

    def interact(self, payload: dict[str, Any], **post: Any) -> httpx.Response:
        return self.post(interaction(payload), **post)

    def click(
        self, action_id: str, value: str, *, user: str, channel: str, ts: str, select: bool = False, **post: Any
    ) -> tuple[httpx.Response, str]:
        """A button (or menu option) on the message (channel, ts); returns the ack and its response_url name."""
        hook = f"act-{uuid.uuid4().hex[:8]}"
        body = block_actions(
            action_id,
            value,
            user=user,
            channel=channel,
            ts=ts,
            select=select,
            response_url=self.slack.response_url(hook),
        )
        response = self.post(body, **post)
        return response, hook

    def open_home(self, user: str) -> httpx.Response:
        return self.post(app_home_opened(user), content_type="application/json")

    def click_home(self, action_id: str, value: str, *, user: str, view_id: str) -> httpx.Response:
        return self.post(home_click(action_id, value, user=user, view_id=view_id))

    def in_modal(
        self, view: dict[str, Any], *, user: str, values: dict[str, Any], action_id: str | None = None
    ) -> httpx.Response:
        """A modal submission (or, with `action_id`, a click inside the modal) with typed `values`."""
        state_view = {**view, "state": {"values": values}}
        base = {"user": slack_user(user), "view": state_view, "trigger_id": f"trig-{uuid.uuid4().hex[:6]}"}
        if action_id is None:
            return self.interact({"type": "view_submission", **base})
        return self.interact(
            {
                "type": "block_actions",
                **base,
                "container": {"type": "view", "view_id": view["id"]},
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": "b",
                        "type": "button",
                        "value": "x",
                        "action_ts": str(time.time()),
                    }
                ],
            }
        )

    # --- what came out ----------------------------------------------------------------------------
    def answer(self, hook: str, timeout: float = 10) -> dict[str, Any]:
        """What the bot posted to the response_url named `hook` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.slack.calls("response_url"):
                if call.params["_name"] == hook:
                    assert call.ok, call
                    return call.params
            time.sleep(0.02)
        raise AssertionError(
            f"nothing was posted to response_url {hook}; calls: {[c.method for c in self.slack.calls()]}"
        )

    def wait(self, method: str, count: int = 1, timeout: float = 10) -> list[RecordedCall]:
        return self.slack.wait_for(method, count, timeout=timeout)


@contextmanager
def serve(settings: Settings, slack: FakeSlack) -> Iterator[BotServer]:
    """The bot's FastAPI app on a free port, in this process (uvicorn in a thread)."""
    from bot.server import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the bot's server did not start"
        time.sleep(0.02)
    try:
        yield BotServer(settings, slack, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
