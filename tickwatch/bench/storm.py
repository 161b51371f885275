"""`tickwatch bench --only storm`: a storm of alerts to one Slack channel, through the real delivery path.

Its own module because several sections of the bench are written at once; `tickwatch.bench` runs it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from pipeline.schema import AlertEvent, Anomaly
from pipeline.settings import Settings
from pipeline.worker.app import DELIVER, app_for
from stack.fake_slack import FakeSlack
from tickwatch.bench.common import lane


def storm_figures(
    base: Settings,
    console: Console,
    *,
    alerts: int = 200,
    seconds: float = 60.0,
    threads: int = 8,
) -> dict[str, float]:
    """A storm of `alerts` crashes reaching Slack within `seconds` (inside the 60 s storm window), driven
    through the real delivery path: `deliver` tasks on a threaded alerts worker, against a local fake Slack.
    Prints the Slack calls made, the messages posted, and how long until the grouped message listed every
    member (from the first alert and from the last one). Returns those figures."""
    now = datetime.now(UTC)
    crashes = [
        Anomaly(
            id=f"storm-bench-{i:03d}",
            symbol=f"SB{i:03d}",
            rule="drop",
            timestamp=now,
            price=92.0,
            reference_price=100.0,
            reference_timestamp=now - timedelta(minutes=2),
            change_pct=-8.0,
            threshold_pct=5.0,
            window_seconds=300,
            peak_price=92.0 - i / 100,
            peak_change_pct=-8.0 - i / 100,
            peak_timestamp=now,
            detected_at=now,
        )
        for i in range(alerts)
    ]
    with lane(base, base.stack_dir / "logs", "storm") as current, FakeSlack() as slack:
        settings, fleet = current.settings, current.fleet
        fleet.env.update({"SLACK_BOT_TOKEN": "xoxb-bench", "TICKWATCH_SLACK_API_URL": slack.url})
        fleet.worker(threads, "--queues", settings.alerts_queue, "--pool", "threads")
        app = app_for(settings)
        time.sleep(3)  # let the worker connect before the clock starts
        started = time.time()
        for i, anomaly in enumerate(crashes):
            app.send_task(
                DELIVER,
                ("slack", AlertEvent.for_anomaly(anomaly).model_dump(mode="json")),
                queue=settings.alerts_queue,
            )
            time.sleep(max(0.0, started + (i + 1) * seconds / alerts - time.time()))
        last_sent = time.time()
        lone = settings.storm_threshold
        complete = f"🌪️ Market storm: {alerts - lone} alerts"
        deadline = time.monotonic() + 60
        done = None
        while done is None and time.monotonic() < deadline:
            done = next(
                (
                    call.at
                    for call in slack.calls()
                    if call.ok and str(call.params.get("text", "")).startswith(complete)
                ),
                None,
            )
            time.sleep(0.1)
        time.sleep(settings.storm_edit_interval_seconds + 1)  # any follow-up edit still to come
        calls = slack.calls()
    figures = {
        "calls": len(calls),
        "posted": sum(c.method == "chat.postMessage" and c.ok for c in calls),
        "edits": sum(c.method == "chat.update" and c.ok for c in calls),
        "complete_after_first": (done - started) if done else float("nan"),
        "complete_after_last": (done - last_sent) if done else float("nan"),
    }
    table = Table("measure", "figure", title=f"alert storm: {alerts} alerts to one Slack channel in {seconds:.0f} s")
    table.add_row("Slack Web API calls made", f"{figures['calls']:,}")
    table.add_row("messages posted (alone before the threshold + grouped)", f"{figures['posted']:,}")
    table.add_row("edits of the grouped message (chat.update)", f"{figures['edits']:,}")
    table.add_row("grouped message complete, after the first alert", f"{figures['complete_after_first']:.1f} s")
    table.add_row("grouped message complete, after the last alert", f"{figures['complete_after_last']:.1f} s")
    console.print(table)
    return figures
