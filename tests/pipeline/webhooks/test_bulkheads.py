"""No receiver can slow another, hold the workers or lose an event: trickling, hanging, refusing and failing
endpoints beside a healthy one, a circuit that opens and closes, and a worker killed mid-attempt (real Redis and
Celery workers; the receivers are local servers)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator

from pipeline.webhooks import subscriptions
from stack.webhook_receiver import HANG, TRICKLE, Reply, WebhookReceiver
from tests.conftest import Namespace, wait_for
from tests.pipeline.webhooks.test_subscriptions import alerts_worker, configure, event, log_of, subscribe

EVENTS = 10


@contextlib.contextmanager
def body_dripper() -> Iterator[str]:
    """A receiver that answers 200 at once, then drips its body one byte every 0.3 s, forever."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            while not stop.wait(0.3):
                connection.sendall(b"x")

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    finally:
        stop.set()
        server.close()


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/hook"  # closed again: connections are refused


def test_bad_endpoints_never_slow_a_healthy_one_and_their_attempts_end_at_the_deadline(namespace: Namespace):
    ns = namespace
    configure(ns, schedule="[0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]", timeout=1.0)
    alerts_worker(ns, threads=2)  # few threads: a task that waited for its endpoints would queue the others
    with (
        WebhookReceiver(TRICKLE) as header_drip,
        body_dripper() as body_drip,
        WebhookReceiver(HANG) as hanging,
        WebhookReceiver(*([Reply(500)] * 100)) as failing,
        WebhookReceiver() as healthy,
    ):
        bad = {
            name: subscribe(ns, url)[0]
            for name, url in [
                ("header", header_drip.url),
                ("body", body_drip),
                ("hang", hanging.url),
                ("refused", refused_url()),
                ("500", failing.url),
            ]
        }
        good, _ = subscribe(ns, healthy.url)
        started = time.time()
        for n in range(EVENTS):
            subscriptions.dispatch(ns.redis, ns.settings, event(n))
        wait_for(lambda: len(healthy.received) == EVENTS, timeout=20, what="every event at the healthy endpoint")
        assert max(receipt.at for receipt in healthy.receipts) - started < 3.0

        def first_attempt(name: str):
            """The endpoint's earliest attempt, whichever event it was for (events dispatched in one
            millisecond are listed in any order)."""
            attempts = [attempt for delivery in log_of(ns, bad[name]) for attempt in delivery.history]
            return min(attempts, key=lambda attempt: attempt.at, default=None)

        for name in ("header", "hang"):
            wait_for(lambda name=name: first_attempt(name), timeout=15, what=f"an attempt to the {name} endpoint")
            attempt = first_attempt(name)
            assert attempt.error.startswith("timed out") and attempt.latency_ms < 1500, (name, attempt)
        wait_for(lambda: first_attempt("body"), timeout=15, what="an attempt to the dripping body")
        assert first_attempt("body").response_code == 200  # its status came in time: the body was cut off

        wait_for(
            lambda: subscriptions.status(ns.redis, ns.settings, bad["500"]).circuit.state != "closed",
            timeout=15,
            what="the failing endpoint's circuit to open",
        )
        seen = len(failing.received)
        time.sleep(1.0)  # open: deliveries wait on their schedule, no attempts (cool-off 60 s by default)
        assert len(failing.received) == seen
        assert subscriptions.status(ns.redis, ns.settings, good).circuit.state == "closed"


def test_a_circuit_probes_after_its_cooloff_and_closes_when_the_endpoint_answers(namespace: Namespace):
    ns = namespace
    configure(ns, schedule="[0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]", timeout=1.0)
    ns.env.update({"TICKWATCH_WEBHOOK_CIRCUIT_FAILURES": "3", "TICKWATCH_WEBHOOK_CIRCUIT_COOLOFF_SECONDS": "2"})
    alerts_worker(ns)
    with WebhookReceiver(*([Reply(500)] * 3), *([Reply(204)] * 20)) as flaky:
        sub, _ = subscribe(ns, flaky.url)
        for n in range(3):
            subscriptions.dispatch(ns.redis, ns.settings, event(n))
        wait_for(lambda: len(flaky.received) == 3, timeout=15, what="three failing attempts")
        opened = time.time()
        # >=: once the probe succeeds, the waiting deliveries follow within milliseconds
        wait_for(lambda: len(flaky.received) >= 4, timeout=15, what="the probe after the cool-off")
        assert flaky.receipts[3].at - opened >= 1.5
        wait_for(lambda: {d.status for d in log_of(ns, sub)} == {"succeeded"}, timeout=15, what="all delivered")
        assert subscriptions.status(ns.redis, ns.settings, sub).circuit.state == "closed"
        assert sorted({r.headers["webhook-id"] for r in flaky.receipts}) == [f"msg_test-{n}" for n in range(3)]


def test_an_attempt_cut_short_by_a_killed_worker_is_made_again(namespace: Namespace):
    ns = namespace
    configure(ns, timeout=2.0)
    worker = alerts_worker(ns)
    with WebhookReceiver(HANG, Reply(204)) as slow:
        subscribe(ns, slow.url)
        subscriptions.dispatch(ns.redis, ns.settings, event(1))
        wait_for(lambda: slow.received, timeout=15, what="the attempt in flight")
        ns.stop(worker, signal.SIGKILL)  # mid-attempt: the task was acknowledged, the lease was not
        alerts_worker(ns)
        wait_for(lambda: len(slow.received) == 2, timeout=30, what="the attempt made again by the new worker")
        assert {r.headers["webhook-id"] for r in slow.receipts} == {"msg_test-1"}
