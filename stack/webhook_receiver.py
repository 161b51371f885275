"""A local webhook subscriber for the tests, the bench and the demo: it records what it receives.

Stdlib only (a `ThreadingHTTPServer` in a daemon thread). Each POST gets the next planned reply — a status,
optionally with headers (`Reply(302, {"location": …})`, `Reply(503, {"retry-after": "1"})`) or `HANG` (never
answers, like a dead endpoint that accepted the connection) or `TRICKLE` (starts its answer, then sends one
byte of its headers every 0.3 s, forever: a peer that would hold a per-read timeout open) — and the last
reply repeats once the plan is used up (default: 204 for all). Receipts carry the wall time they arrived,
for latency figures.

    with WebhookReceiver(500, 204) as hooks:   # fails once, then accepts
        ...subscribe hooks.url...
        headers, body = hooks.received[0]
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    trickle: bool = False


HANG = Reply(hang=True)
TRICKLE = Reply(trickle=True)
TRICKLE_SECONDS = 0.3


@dataclass(frozen=True)
class Receipt:
    at: float  # time.time() when the request arrived
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """A subscriber on loopback (127.0.0.1, a free port) answering with the given replies in turn."""

    def __init__(self, *replies: int | Reply, path: str = "/hook") -> None:
        self.receipts: list[Receipt] = []
        self._plan = [r if isinstance(r, Reply) else Reply(r) for r in replies] or [Reply()]
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as senders expect of a real endpoint

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                reply = receiver._record(Receipt(at, {k.lower(): v for k, v in self.headers.items()}, body))
                if reply.hang or reply.trickle:
                    if reply.trickle:
                        with contextlib.suppress(OSError):  # the sender gave up on us: what the trickle is for
                            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                            while not receiver._released.wait(TRICKLE_SECONDS):
                                self.wfile.write(b"x")
                    receiver._released.wait()
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def _record(self, receipt: Receipt) -> Reply:
        with self._lock:
            self.receipts.append(receipt)
            return self._plan.pop(0) if len(self._plan) > 1 else self._plan[0]

    @property
    def received(self) -> list[tuple[dict[str, str], bytes]]:
        """(headers, body) of every request so far, headers lower-cased."""
        return [(r.headers, r.body) for r in self.receipts]

    def close(self) -> None:
        self._released.set()  # hanging requests end (without an answer)
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
