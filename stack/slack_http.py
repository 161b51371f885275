"""The HTTP side of the fake Slack (stack/fake_slack.py): a threaded stdlib server that reads requests the
way slack_sdk sends them and hands them to the fake's Web API.

`/api/METHOD` bodies are JSON (`json=` calls) or form-encoded (`params=`/`data=`), plus query parameters;
the JSON-string fields of form bodies are decoded so every encoding looks alike. `/upload/FILE_ID` and
`/response/NAME` take the bytes of a file upload and what a bot posts to a `response_url`.
"""

from __future__ import annotations

import json
import logging
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

# Slack takes these as JSON strings in form bodies; decoded so tests see the same shape for every encoding.
JSON_FIELDS = ("blocks", "attachments", "metadata", "files", "view")

Response = dict[str, Any]


class WebApi(Protocol):
    """What the server hands requests to (FakeSlack)."""

    def serve(
        self, method: str, params: dict[str, Any], authorization: str | None, content_type: str
    ) -> tuple[int, dict[str, str], Response]: ...

    def receive_upload(self, file_id: str, data: bytes) -> int: ...

    def receive_response(self, name: str, body: bytes) -> int: ...


def error(code: str) -> Response:
    return {"ok": False, "error": code}


class SlackHttpServer(ThreadingHTTPServer):
    """Serve `api` at (host, port); port 0 picks a free one."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: WebApi) -> None:
        super().__init__(address, _Handler)
        self.api = api


def _parse_body(body: bytes, content_type: str) -> tuple[str, dict[str, Any] | None]:
    """Body params and which encoding carried them; None params means the JSON was unreadable.

    WebClient labels every request application/json, even a bodyless one, and switches the label to
    form-encoded when it sends `params=`; file bytes go to the `upload_url`, not through here.
    """
    if not body:
        return "none", {}
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            params = json.loads(body)
        except ValueError:
            return "json", None
        return "json", params if isinstance(params, dict) else None
    return "form", dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    decoded = dict(params)
    for name in JSON_FIELDS:
        # Unparseable JSON stays a string: Slack would reject it, and the test still sees what was sent.
        if isinstance(decoded.get(name), str):
            with suppress(ValueError):
                decoded[name] = json.loads(decoded[name])
    return decoded


class _Handler(BaseHTTPRequestHandler):
    server: SlackHttpServer
    server_version = "FakeSlack/1.0"

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:  # Slack also takes GET with query parameters
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        for prefix, receive in (
            ("/upload/", self.server.api.receive_upload),
            ("/response/", self.server.api.receive_response),
        ):
            if url.path.startswith(prefix) and self.command == "POST":
                status = receive(url.path.removeprefix(prefix), self.rfile.read(length))
                self._reply(status, {}, {"ok": status == 200})
                return
        method = url.path.removeprefix("/api/")
        if not url.path.startswith("/api/") or not method or "/" in method:
            self._reply(404, {}, error("not_found"))
            return
        content_type, body_params = _parse_body(self.rfile.read(length), self.headers.get("Content-Type", ""))
        if body_params is None:
            self._reply(200, {}, error("invalid_json"))
            return
        params = _decode_json_fields({**dict(parse_qsl(url.query, keep_blank_values=True)), **body_params})
        status, headers, response = self.server.api.serve(
            method, params, self.headers.get("Authorization"), content_type
        )
        self._reply(status, headers, response)

    def _reply(self, status: int, headers: dict[str, str], response: Response) -> None:
        payload = json.dumps(response).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake slack: " + format, *args)
