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

Run on its own, it is a subscriber to try webhooks with, which verifies each delivery's signature:

    python -m stack.webhook_receiver --port 9000 --secret whsec_…
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
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

    def __init__(
        self,
        *replies: int | Reply,
        path: str = "/hook",
        port: int = 0,
        on_receipt: Callable[[Receipt], None] | None = None,
    ) -> None:
        self.receipts: list[Receipt] = []
        self._on_receipt = on_receipt
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

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def _record(self, receipt: Receipt) -> Reply:
        with self._lock:
            self.receipts.append(receipt)
            if self._on_receipt is not None:
                self._on_receipt(receipt)
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


def describe(receipt: Receipt, secret: str | None) -> str:
    """One line about a delivery: its id and event, and whether its Standard Webhooks signature verifies."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    delivery = receipt.headers.get("webhook-id", "(no webhook-id)")
    try:
        event = json.loads(receipt.body)
        what = f"{event.get('type')} {event.get('data', {}).get('symbol', '')}".strip()
    except ValueError:
        what = f"{len(receipt.body)} bytes, not JSON"
    if secret is None:
        return f"• {delivery} {what} (not verified: no --secret)"
    try:
        Webhook(secret).verify(receipt.body, receipt.headers)
    except WebhookVerificationError as error:
        return f"✘ {delivery} {what}: the signature does not verify ({error})"
    return f"✔ {delivery} {what}: signature verified"


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C: the URL alone on stdout first, then one line per delivery."""
    parser = argparse.ArgumentParser(
        prog="python -m stack.webhook_receiver",
        description="A local webhook subscriber: prints each delivery and whether its signature verifies.",
        epilog="example: python -m stack.webhook_receiver --port 9000 --secret whsec_…",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--path", default="/hook", help="path to accept deliveries on (default: %(default)s)")
    parser.add_argument("--secret", help="the subscription's secret (whsec_…), shown when it was created")
    args = parser.parse_args(argv)

    def show(receipt: Receipt) -> None:
        print(describe(receipt, args.secret), flush=True)

    with WebhookReceiver(path=args.path, port=args.port, on_receipt=show) as receiver:
        print(receiver.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
