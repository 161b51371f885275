"""A local fake of the Slack Web API for the tests and the offline demo, since Slack is unreachable here.

Stdlib only (a `ThreadingHTTPServer` in a daemon thread: `stack/slack_http.py`), so it adds no dependency.
It answers the methods Tickwatch uses the way slack_sdk's `WebClient` calls them: JSON bodies for
`chat.*` and `views.*` (the client sends those with `json=`), form-encoded bodies for `params=`/`data=`
calls such as `auth.test`. Point `WebClient(base_url=...)` or `TICKWATCH_SLACK_API_URL` at the URL
`start()` returns.

Beyond `/api/`, it serves what Slack serves elsewhere: the `upload_url` that `files.getUploadURLExternal`
hands out (the bytes of `files_upload_v2` land there, method `files.upload_bytes`), and `response_url`s
for slash commands and buttons (`response_url(name)`; what the bot `respond()`s is recorded as method
`response_url`, its `params` the JSON body plus `_name`).

    with FakeSlack() as slack:
        WebClient(token="xoxb-test", base_url=slack.url).chat_postMessage(channel="#alerts", text="hi")
        assert slack.calls("chat.postMessage")[0].params["text"] == "hi"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from stack.slack_http import JSON_FIELDS, Response, SlackHttpServer, error
from stack.slack_requests import TEAM

TEAM_ID, USER_ID, BOT_ID = "T0FAKE0001", "U0FAKE0001", "B0FAKE0001"
CONTENT_FIELDS = ("text", "blocks", "attachments")
_CHANNEL_ID = re.compile(r"[CDG][A-Z0-9]{8,}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{8,}")


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake answered: what a test asserts on."""

    method: str
    params: dict[str, Any]
    authorization: str | None
    content_type: str  # "json", "form" or "none" (no body): which encoding the client chose
    status: int
    response: Response
    simulated_failure: bool = False  # answered by `fail_next`, not by the method itself
    at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


def load_calls(path: Path) -> list[RecordedCall]:
    """Read a `record_to` file, e.g. in a demo whose server runs in another process."""
    with path.open(encoding="utf-8") as lines:
        return [RecordedCall(**json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True)
class Outage:
    """How Slack misbehaves for a while: `status` and `error` for `methods` (all when empty), optionally only
    for calls with blocks (`blocks_only`: Slack refusing a message's blocks), after `delay` seconds."""

    until: float
    status: int = 200
    error: str = "fatal_error"
    methods: tuple[str, ...] = ()
    retry_after: int | None = None
    delay: float = 0.0
    blocks_only: bool = False

    def applies(self, method: str, params: dict[str, Any]) -> bool:
        return (not self.methods or method in self.methods) and (not self.blocks_only or bool(params.get("blocks")))


class FakeSlack:
    """The fake server: start it, point a client at `url`, then inspect `calls()`.

    Thread-safe: handler threads record while tests read. With `record_to`, every call is also appended
    as a JSON line (token redacted), so processes other than the server's can see what was sent.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, record_to: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.record_to = record_to
        self._cond = threading.Condition()
        self._calls: list[RecordedCall] = []
        self._failures: dict[str, deque[tuple[int, int | None]]] = {}
        self._outages: list[Outage] = []
        self._messages: dict[tuple[str, str], Response] = {}
        self._views: dict[str, Response] = {}
        self._homes: dict[str, str] = {}  # user id -> the view id of their App Home tab
        self._uploads: dict[str, dict[str, Any]] = {}  # file id -> {"filename", "length", "data": bytes | None}
        self._last_ts_us = 0
        self._server: SlackHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Response]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "users.info": self._users_info,
        }
        # users.info answers: every user is a full member of the fake workspace unless set here otherwise, e.g.
        # fake.users["U0GUEST01"] = {"is_restricted": True} or {"team_id": "T0OTHER01", "is_stranger": True}.
        self.users: dict[str, dict[str, Any]] = {}

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> str:
        """Listen (port 0 picks a free one) and return the base URL, e.g. http://127.0.0.1:PORT/api/."""
        if self._server is not None:
            raise RuntimeError(f"FakeSlack is already running at {self.url}")
        if self.record_to is not None:
            self.record_to.parent.mkdir(parents=True, exist_ok=True)
        server = SlackHttpServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        self._server = server
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    def __enter__(self) -> FakeSlack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what tests use -----------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Recorded calls in arrival order, failed ones included; only `method`'s if given."""
        with self._cond:
            return self._matching(method)

    def clear(self) -> None:
        """Forget calls, posted messages and pending failures, so one server can serve many tests."""
        with self._cond:
            self._calls.clear()
            self._failures.clear()
            self._messages.clear()
            self._views.clear()
            self._uploads.clear()

    def clear_calls(self) -> None:
        """Forget only the recorded calls: messages, modals and uploads stay for the next test to act on."""
        with self._cond:
            self._calls.clear()

    def wait_for(self, method: str | None, count: int = 1, timeout: float = 5.0) -> list[RecordedCall]:
        """Block until at least `count` calls of `method` arrived (from workers in other threads);
        returns all of them so far, or raises TimeoutError saying how many came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := self._matching(method)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout}s for {count} {method or 'any'} call(s), got {len(found)}")
                self._cond.wait(remaining)
            return found

    def response_url(self, name: str = "hook") -> str:
        """A `response_url` to put in a signed slash-command or button payload; posts to it are recorded."""
        return f"{self.url.removesuffix('api/')}response/{name}"

    def message(self, channel: str, ts: str) -> Response | None:
        """The message as it stands now (after any `chat.update`), or None."""
        with self._cond:
            found = self._messages.get((_channel_id(channel) or "", ts))
            return dict(found) if found else None

    def view(self, view_id: str) -> Response | None:
        """A modal as it stands now (after any `views.update`), or None."""
        with self._cond:
            found = self._views.get(view_id)
            return dict(found) if found else None

    def uploaded(self, file_id: str) -> bytes | None:
        """The bytes POSTed to a file's `upload_url`, or None if none came."""
        with self._cond:
            return self._uploads.get(file_id, {}).get("data")

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP `status` (and a Retry-After header unless
        None), as Slack does when rate limiting; slack_sdk's RateLimitErrorRetryHandler reacts to this."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._cond:
            self._failures.setdefault(method, deque()).extend([(status, retry_after)] * times)

    def outage(self, outage: Outage) -> None:
        """From now until `outage.until` (time.monotonic()), answer calls as `outage` says: a status with
        Retry-After, a Web API error, or only after a delay (a client's timeout fires first)."""
        with self._cond:
            self._outages.append(outage)

    def end_outages(self) -> None:
        with self._cond:
            self._outages.clear()

    def _outage_for(self, method: str, params: dict[str, Any]) -> Outage | None:
        now = time.monotonic()
        return next((o for o in self._outages if now < o.until and o.applies(method, params)), None)

    # --- serving ------------------------------------------------------------------------------------
    def _matching(self, method: str | None) -> list[RecordedCall]:
        return [call for call in self._calls if method is None or call.method == method]

    def serve(
        self, method: str, params: dict[str, Any], authorization: str | None, content_type: str
    ) -> tuple[int, dict[str, str], Response]:
        headers: dict[str, str] = {}
        with self._cond:
            outage = self._outage_for(method, params)
        if outage is not None and outage.delay:
            time.sleep(outage.delay)
        with self._cond:
            pending = self._failures.get(method)
            simulated = bool(pending)
            if pending:
                status, retry_after = pending.popleft()
                if retry_after is not None:
                    headers["Retry-After"] = str(retry_after)
                response = error("ratelimited" if status == 429 else "fatal_error")
            elif outage is not None:
                simulated = True
                status, response = outage.status, error(outage.error)
                if outage.retry_after is not None:
                    headers["Retry-After"] = str(outage.retry_after)
            else:
                status, response = 200, self._dispatch(method, params, authorization)
            call = RecordedCall(method, params, authorization, content_type, status, response, simulated)
            self._calls.append(call)
            self._persist(call)
            self._cond.notify_all()
        return status, headers, response

    def _record_outside_api(self, method: str, params: dict[str, Any], status: int, response: Response) -> None:
        with self._cond:
            call = RecordedCall(method, params, None, "json", status, response)
            self._calls.append(call)
            self._persist(call)
            self._cond.notify_all()

    def receive_upload(self, file_id: str, data: bytes) -> int:
        """The POST of a file's bytes to its upload_url: 200 if the id was handed out and the length matches."""
        with self._cond:
            upload = self._uploads.get(file_id)
            ok = upload is not None and upload["length"] == len(data)
            if upload is not None and ok:
                upload["data"] = data
        status = 200 if ok else 400
        self._record_outside_api("files.upload_bytes", {"file_id": file_id, "length": len(data)}, status, {"ok": ok})
        return status

    def receive_response(self, name: str, body: bytes) -> int:
        try:
            params = json.loads(body)
        except ValueError:
            params = None
        ok = isinstance(params, dict) and (_has_content(params) or bool(params.get("delete_original")))
        status = 200 if ok else 400
        self._record_outside_api(
            "response_url", {**(params if isinstance(params, dict) else {}), "_name": name}, status, {"ok": ok}
        )
        return status

    def _dispatch(self, method: str, params: dict[str, Any], authorization: str | None) -> Response:
        handler = self._methods.get(method)
        if handler is None:
            return error("unknown_method")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error("not_authed")
        if not token.startswith("xox"):
            return error("invalid_auth")
        return handler(params)

    def _persist(self, call: RecordedCall) -> None:
        if self.record_to is None:
            return
        line = json.dumps({**asdict(call), "authorization": _redact(call.authorization)}, default=str)
        with self.record_to.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def _next_ts(self) -> str:
        """Slack's message ids: epoch seconds with six decimals, unique and increasing per server."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    # --- methods ------------------------------------------------------------------------------------
    def _auth_test(self, params: dict[str, Any]) -> Response:
        return {
            "ok": True,
            "url": "https://tickwatch-fake.slack.com/",
            "team": "Tickwatch (fake)",
            "user": "tickwatch",
            "team_id": TEAM_ID,
            "user_id": USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> Response:
        channel = _channel_id(params.get("channel"))
        if channel is None:
            return error("channel_not_found")
        if not _has_content(params):
            return error("no_text")
        ts = self._next_ts()
        message = {
            "type": "message",
            "user": USER_ID,
            "bot_id": BOT_ID,
            "team": TEAM_ID,
            "text": params.get("text", ""),
            "ts": ts,
            **_content(params),
        }
        if params.get("thread_ts"):
            message["thread_ts"] = str(params["thread_ts"])
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _update(self, params: dict[str, Any]) -> Response:
        channel = _channel_id(params.get("channel"))
        if channel is None:
            return error("channel_not_found")
        ts = str(params.get("ts", ""))
        if (channel, ts) not in self._messages:
            return error("message_not_found")
        if not _has_content(params):
            return error("no_text")
        message = {
            **self._messages[(channel, ts)],
            "text": params.get("text", ""),
            **_content(params),
            "edited": {"user": USER_ID, "ts": self._next_ts()},
        }
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}

    def _post_ephemeral(self, params: dict[str, Any]) -> Response:
        if _channel_id(params.get("channel")) is None:
            return error("channel_not_found")
        if not params.get("user"):
            return error("user_not_in_channel")
        if not _has_content(params):
            return error("no_text")
        return {"ok": True, "message_ts": self._next_ts()}

    def _get_permalink(self, params: dict[str, Any]) -> Response:
        channel = _channel_id(params.get("channel"))
        ts = str(params.get("message_ts", ""))
        if channel is None:
            return error("channel_not_found")
        if (channel, ts) not in self._messages:
            return error("message_not_found")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://tickwatch-fake.slack.com/archives/{channel}/p{ts.replace('.', '')}",
        }

    def _views_open(self, params: dict[str, Any]) -> Response:
        if not params.get("trigger_id"):
            return error("invalid_arguments")
        return self._store_view(self._new_view_id(), params.get("view"))

    def _views_update(self, params: dict[str, Any]) -> Response:
        view_id = str(params.get("view_id") or "")
        if view_id not in self._views:
            return error("not_found")
        if params.get("hash") and params["hash"] != self._views[view_id]["hash"]:
            return error("hash_conflict")
        return self._store_view(view_id, params.get("view"))

    def _store_view(self, view_id: str, view: Any) -> Response:
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home") or not view.get("blocks"):
            return error("invalid_arguments")
        stored = {**view, "id": view_id, "hash": self._next_ts(), "state": {"values": {}}}
        self._views[view_id] = stored
        return {"ok": True, "view": stored}

    def _views_publish(self, params: dict[str, Any]) -> Response:
        """An App Home tab: one view per user, replaced by each publish."""
        user = str(params.get("user_id") or "")
        view = params.get("view")
        if not _USER_ID.fullmatch(user):
            return error("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            return error("invalid_arguments")
        view_id = self._homes.get(user) or self._new_view_id()
        self._homes[user] = view_id
        return self._store_view(view_id, view)

    def home(self, user: str) -> Response | None:
        """The user's App Home view as last published, or None."""
        with self._cond:
            view_id = self._homes.get(user)
            return dict(self._views[view_id]) if view_id else None

    def _new_view_id(self) -> str:
        return f"V{len(self._views) + 1:010d}"

    def _users_info(self, params: dict[str, Any]) -> Response:
        user = str(params.get("user") or "")
        if not user:
            return error("user_not_found")
        profile = {
            "id": user,
            "team_id": TEAM,
            "name": user.lower(),
            "tz": "UTC",
            "is_restricted": False,
            "is_ultra_restricted": False,
            **self.users.get(user, {}),
        }
        return {"ok": True, "user": profile}

    def _get_upload_url(self, params: dict[str, Any]) -> Response:
        try:
            length = int(params.get("length", ""))
        except ValueError:
            return error("invalid_arguments")
        if not params.get("filename") or length <= 0:
            return error("invalid_arguments")
        file_id = f"F{len(self._uploads) + 1:010d}"
        self._uploads[file_id] = {"filename": params["filename"], "length": length, "data": None}
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.url.removesuffix('api/')}upload/{file_id}"}

    def _complete_upload(self, params: dict[str, Any]) -> Response:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            return error("invalid_arguments")
        completed = []
        for item in files:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload["data"] is None:
                return error("file_not_found")  # never handed out, or its bytes never arrived
            completed.append(
                {
                    "id": item["id"],
                    "name": upload["filename"],
                    "title": item.get("title") or upload["filename"],
                    "size": upload["length"],
                }
            )
        channel = params.get("channel_id")
        if channel is not None and _channel_id(channel) is None:
            return error("channel_not_found")
        return {"ok": True, "files": completed}


def _redact(authorization: str | None) -> str | None:
    """Keep the scheme and token type (xoxb-, xoxp-) but never write a token to disk."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return f"{scheme} {token[:5]}…" if token else scheme


def _channel_id(raw: Any) -> str | None:
    """Slack answers with ids, not names: the same name always maps to the same C… id, a user to a D…."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    name = raw.strip()
    if _CHANNEL_ID.fullmatch(name):
        return name
    prefix = "D" if _USER_ID.fullmatch(name) else "C"
    return prefix + hashlib.sha1(name.lstrip("#").lower().encode()).hexdigest()[:10].upper()


def _has_content(params: dict[str, Any]) -> bool:
    return any(params.get(name) for name in CONTENT_FIELDS)


def _content(params: dict[str, Any]) -> dict[str, Any]:
    return {name: params[name] for name in JSON_FIELDS if params.get(name)}


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C, printing the URL alone on stdout so scripts can capture it."""
    parser = argparse.ArgumentParser(
        prog="python -m stack.fake_slack",
        description="Serve a local fake of the Slack Web API (auth.test, chat.*, views.*, files upload v2, "
        "response_url receivers).",
        epilog="example: python -m stack.fake_slack --port 8765 --record-to /tmp/slack.jsonl",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--record-to", type=Path, help="append every call as a JSON line to this file")
    args = parser.parse_args(argv)
    fake = FakeSlack(host=args.host, port=args.port, record_to=args.record_to)
    print(fake.start(), flush=True)
    print(f"export TICKWATCH_SLACK_API_URL={fake.url}  # Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
