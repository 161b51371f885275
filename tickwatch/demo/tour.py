"""The demo's tour of the front-ends: the HTTP API, the Slack bot, webhooks and the daily digest, at work.

Everything goes through the front-ends as a user's tools would reach them: the API and the bot run as
`tickwatch api` / `tickwatch bot` subprocesses and are spoken to over HTTP (the CLI never imports `api` or
`bot`); Slack's requests to the bot are signed like Slack signs them; a local receiver checks each webhook
delivery with the independent `standardwebhooks` package.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import httpx
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline.alerting.actions import AlertAction
from stack.fake_slack import FakeSlack, RecordedCall
from stack.slack_requests import block_actions, signed_headers, slash_command
from stack.webhook_receiver import Receipt, WebhookReceiver
from tickwatch.demo.blocks_text import action_ids, blocks_text
from tickwatch.fleet import Fleet, Server

SIGNING_SECRET = "tickwatch-demo-signing-secret"  # the demo's bot checks it; the tour signs with it
API_TOKEN = "tw-demo-admin-0123456789abcdef"  # an admin token of the demo's API only (TICKWATCH_API_TOKENS)
USER_ID, USER_NAME = "U0DEMO0001", "newcomer"  # who clicks and types in the tour
ALERT_CHANNEL = "C0ALERTS01"
RECEIVER = "tickwatch demo receiver"  # the description of the demo's subscription (removed at the end)
EVENTS = ["anomaly.detected", "anomaly.resolved", "digest.daily"]
WIDTH = 100
T = TypeVar("T")


def fleet_env() -> dict[str, str]:
    """What the demo's processes need on top of the user's settings for the front-ends to be reachable."""

    return {
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TICKWATCH_API_TOKENS": json.dumps([{"name": "demo", "token": API_TOKEN, "scope": "admin"}]),
        "TICKWATCH_WEBHOOK_ALLOW_NETWORKS": '["127.0.0.0/8"]',
        # the market acts (tickwatch.demo.market_acts): a feed silent for seconds, not minutes, is noticed at
        # once; and opening gaps alert
        "TICKWATCH_FEED_CHECK_SECONDS": "1",
        "TICKWATCH_STALE_MIN_SECONDS": "3",
        "TICKWATCH_GAP_PCT": "4",
    }


@dataclass
class FrontEnds:
    """The running API and bot, the Slack stand-in and the webhook subscriber the tour looks at."""

    api: Server
    bot: Server
    slack: FakeSlack  # the Web API when `offline`; with a real token only the response_url receiver
    offline: bool
    receiver: WebhookReceiver
    subscription: dict[str, Any] = field(default_factory=dict)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}"}

    def verified(self, receipt: Receipt) -> dict[str, Any] | None:
        """The delivery's event if its Standard Webhooks signature checks out with the subscription's secret."""
        try:
            return Webhook(self.subscription["secret"]).verify(receipt.body, receipt.headers)
        except WebhookVerificationError:
            return None


def start(fleet: Fleet, slack: FakeSlack, offline: bool, console: Console) -> FrontEnds:
    """Start the API and the bot, wait until both answer, then subscribe a local receiver through the API."""
    api, bot = fleet.serve("api", "--loglevel", "warning"), fleet.serve("bot", "--log-level", "warning")
    with console.status("Starting the HTTP API and the Slack bot…"):
        fleet.wait_ready(api)
        fleet.wait_ready(bot)
    front = FrontEnds(api, bot, slack, offline, WebhookReceiver())
    _remove_stale_subscriptions(front)
    answer = front.http.post(
        f"{api.url}/v1/webhooks",
        headers=front.auth,
        json={"url": front.receiver.url, "events": EVENTS, "description": RECEIVER},
    )
    answer.raise_for_status()
    front.subscription = answer.json()
    console.print(f"[green]✔[/green] HTTP API on {api.url} (docs: {api.url}/docs), Slack bot on {bot.url}/slack/events")
    console.print(
        f"[green]✔[/green] webhook subscription {front.subscription['id']} created through "
        f"POST /v1/webhooks → a local receiver at {front.receiver.url}"
    )
    return front


def _remove_stale_subscriptions(front: FrontEnds) -> None:
    """Subscriptions an interrupted demo left (their receiver is gone), so deliveries do not fail for days."""
    listed = front.http.get(f"{front.api.url}/v1/webhooks", headers=front.auth)
    listed.raise_for_status()
    for item in listed.json()["items"]:
        if item.get("description") == RECEIVER:
            front.http.delete(f"{front.api.url}/v1/webhooks/{item['id']}", headers=front.auth)


def close(front: FrontEnds) -> None:
    """Delete the demo's subscription (through the API) and stop the receiver."""
    with contextlib.suppress(httpx.HTTPError, KeyError):
        front.http.delete(f"{front.api.url}/v1/webhooks/{front.subscription['id']}", headers=front.auth)
    front.receiver.close()
    front.http.close()


def run(console: Console, front: FrontEnds, fleet: Fleet, day: date, digest_channel: str | None) -> None:
    """The tour: (a) an alert in Slack, (b) Acknowledge, (c) /price, (d) the webhook delivery, (e) the digest."""
    console.rule("[bold]Tour of the front-ends")
    alert = _alert_message(front) if front.offline else None
    if alert is None:
        why = (
            "with a real SLACK_BOT_TOKEN the alerts are in your workspace, so the tour does not read or click them"
            if not front.offline
            else "no alert message with an Acknowledge button was posted"
        )
        panel(console, "a+b · Slack alert and Acknowledge", f"[yellow]skipped[/yellow]: {why}.")
    else:
        _show_alert(console, alert)
        _acknowledge(console, front, alert)
    _price(console, front)
    _webhooks(console, front)
    _digest(console, front, fleet, day, digest_channel)


# --- (a) and (b): the alert message and a click on Acknowledge ----------------------------------------


ACK_BUTTONS = (AlertAction.ACKNOWLEDGE, AlertAction.STORM_ACKNOWLEDGE_ALL)  # an alert's, else a storm's


@dataclass(frozen=True)
class Posted:
    channel: str
    name: str  # the channel as the message was posted to it
    ts: str
    message: dict[str, Any]  # its current state in the fake Slack
    action: AlertAction  # the acknowledge button it carries

    @property
    def label(self) -> str:
        return "Acknowledge" if self.action is AlertAction.ACKNOWLEDGE else "Acknowledge all"


def _alert_message(front: FrontEnds) -> Posted | None:
    """The latest alert still open for acknowledgement as the fake Slack holds it now; else the latest storm
    message (alerts that recovered during the fast replay keep only their History button)."""
    posts = [c for c in front.slack.calls("chat.postMessage") if c.ok]
    for action in ACK_BUTTONS:
        for call in reversed(posts):
            channel, ts = call.response["channel"], call.response["ts"]
            message = front.slack.message(channel, ts) or {}
            if action in action_ids(message.get("blocks", [])):
                return Posted(channel, str(call.params.get("channel")), ts, message, action)
    return None


def _show_alert(console: Console, alert: Posted) -> None:
    if alert.action is AlertAction.ACKNOWLEDGE:
        title, note = "a · An alert in Slack", "header, facts, sparkline, why, then the buttons and the Mute… menu"
    else:
        title = "a · A storm in Slack (alerts grouped in one message)"
        note = (
            "header, a line per alert, then the buttons. More alerts than TICKWATCH_STORM_THRESHOLD to a "
            "channel within a minute are grouped like this"
        )
    panel(
        console,
        title,
        f"[dim]chat.postMessage → {alert.name} ({alert.channel}), ts {alert.ts}[/dim]\n\n"
        + blocks_text(alert.message["blocks"]),
        note=f"Block Kit as Slack shows it: {note}.",
    )


def _acknowledge(console: Console, front: FrontEnds, alert: Posted) -> None:
    value = action_ids(alert.message["blocks"])[alert.action]
    body = block_actions(
        alert.action,
        value,
        user=USER_ID,
        user_name=USER_NAME,
        channel=alert.channel,
        ts=alert.ts,
        response_url=front.slack.response_url("ack"),
    )
    clicked = time.time()
    answer = front.http.post(
        f"{front.bot.url}/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body)
    )
    update = wait(
        lambda: next(
            (c for c in front.slack.calls("chat.update") if c.at >= clicked and c.params.get("ts") == alert.ts), None
        )
    )
    request = (
        f"POST {front.bot.url}/slack/events  [dim](block_actions {alert.action}, signed: "
        f"X-Slack-Signature)[/dim]\n→ HTTP {answer.status_code} in "
        f"{answer.elapsed.total_seconds() * 1000:.0f} ms (Slack wants the ack within 3 s)"
    )
    title = f"b · {USER_NAME} clicks {alert.label}"
    if update is None:
        panel(console, title, request + f"\n[red]no chat.update came within 15 s[/red]; see {front.bot.log}")
        return
    before = set(blocks_text(alert.message["blocks"]).splitlines())
    after = blocks_text(update.params.get("blocks", []), {USER_ID: USER_NAME}).splitlines()
    changed = "\n".join(line for line in after if line not in before)
    panel(
        console,
        title,
        f"{request}\n\nThe bot edits the message in place (chat.update); what changed:\n{changed}",
        note="The redraw also refreshes the facts from Elasticsearch, which now records who acknowledged and when.",
    )


# --- (c) a slash command ---------------------------------------------------------------------------------


def _price(console: Console, front: FrontEnds) -> None:
    body = slash_command(
        "/price", "TSLA 1h", user=USER_ID, channel=ALERT_CHANNEL, response_url=front.slack.response_url("price")
    )
    answer = front.http.post(
        f"{front.bot.url}/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body)
    )
    reply = wait(lambda: next((c for c in front.slack.calls("response_url") if c.params.get("_name") == "price"), None))
    head = (
        f"{USER_NAME} types [bold]/price TSLA 1h[/bold] → POST {front.bot.url}/slack/events → HTTP "
        f"{answer.status_code} (ack{': ' + answer.text if answer.text else ''})"
    )
    if reply is None:
        panel(
            console,
            "c · /price TSLA 1h",
            head + f"\n[red]no answer on the response_url within 15 s[/red]; see {front.bot.log}",
        )
        return
    shown = blocks_text(reply.params["blocks"]) if reply.params.get("blocks") else reply.params.get("text", "")
    panel(console, "c · A slash command: /price TSLA 1h", f"{head}, then the answer on its response_url:\n\n{shown}")


# --- (d) webhooks -----------------------------------------------------------------------------------------


def _webhooks(console: Console, front: FrontEnds) -> None:
    receipts = wait(lambda: front.receiver.receipts[:] or None, timeout=10) or []
    events = [(receipt, front.verified(receipt)) for receipt in receipts]
    good = [event for _, event in events if event is not None]
    if not receipts:
        panel(console, "d · Webhook deliveries", "[red]the receiver got nothing[/red] (see the alerts worker's log)")
        return
    kinds = Counter(event["type"] for event in good)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    receipt, event = next(((r, e) for r, e in events if e and e["type"] == "anomaly.detected"), events[0])
    data = (event or {}).get("data", {})
    summary = {
        "type": (event or {}).get("type"),
        "data": {key: data.get(key) for key in ("symbol", "rule", "change_pct")},
    }
    lines = [
        f"{len(receipts)} POST{'s' if len(receipts) > 1 else ''} to {front.receiver.url} ({counts})",
        f"[green]✔ {len(good)} of {len(receipts)} signatures verified with standardwebhooks[/green]"
        if len(good) == len(receipts)
        else f"[red]✘ {len(receipts) - len(good)} signatures did NOT verify[/red]",
        "",
        "One of them:",
        *(
            f"  {name}: {receipt.headers.get(name, '')[:60]}"
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ),
        f"  body: {escape(json.dumps(summary))} [dim](abridged)[/dim]",
        "  " + ("[green]✔ signature verified[/green]" if event else "[red]✘ signature not verified[/red]"),
    ]
    panel(
        console,
        f"d · What the webhook subscriber received ({front.subscription['id']})",
        "\n".join(lines),
        note="Standard Webhooks: HMAC-SHA256 over id.timestamp.body with the whsec_ secret that "
        "POST /v1/webhooks returned once.",
    )


# --- (e) the daily digest ---------------------------------------------------------------------------------


def _digest(console: Console, front: FrontEnds, fleet: Fleet, day: date, channel: str | None) -> None:
    command = ["digest", "--date", day.isoformat(), "--post", *(["--channel", channel] if channel else [])]
    if not front.offline:
        command.append("--dry-run")
    began = time.time()
    with console.status(f"tickwatch {' '.join(command)}…"):
        done = subprocess.run(
            [sys.executable, "-m", "tickwatch", *command],
            env={**fleet.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=180,
        )
    head = f"$ tickwatch {' '.join(command)}\n"
    if done.returncode != 0:
        panel(console, "e · The daily digest", head + f"[red]{escape(done.stderr.strip()[-1500:])}[/red]")
        return
    if not front.offline:
        panel(
            console,
            "e · The daily digest",
            head + escape(done.stdout.strip()[-1500:]),
            note="With a real Slack token the demo shows what --post would send, and sends nothing.",
        )
        return
    head += escape(done.stdout.strip().splitlines()[-1])
    posted = [
        c
        for c in front.slack.calls()
        if c.at >= began
        and c.method in {"chat.postMessage", "chat.update"}
        and (c.params.get("metadata") or {}).get("event_type") == "digest.daily"
    ]
    files = [c for c in front.slack.calls("files.completeUploadExternal") if c.at >= began]
    body = _digest_lines(posted[-1]) if posted else "[red]nothing reached the fake Slack[/red]"
    chart = f"\n[dim]+ the chart in its thread: {_titles(files)}[/dim]" if files else ""
    delivered = wait(
        lambda: next(
            (e for r in front.receiver.receipts[:] if (e := front.verified(r)) and e["type"] == "digest.daily"), None
        ),
        timeout=10,
    )
    hook = (
        "\n[green]✔[/green] the receiver got digest.daily too (signature verified)"
        if delivered
        else "\n[yellow]no digest.daily webhook delivery within 10 s[/yellow] (see the alerts worker's log)"
    )
    panel(console, f"e · The daily digest of {day}", f"{head}\n\n{body}{chart}{hook}")


def _digest_lines(call: RecordedCall, limit: int = 24) -> str:
    lines = blocks_text(call.params.get("blocks", [])).splitlines()
    more = f"\n[dim]… {len(lines) - limit} more lines[/dim]" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


def _titles(files: list[RecordedCall]) -> str:
    return ", ".join(str(f.get("title") or f.get("id")) for call in files for f in call.params.get("files", []))


# --- helpers ------------------------------------------------------------------------------------------------


def wait(probe: Callable[[], T | None], timeout: float = 15) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.1)
    return None


def panel(console: Console, title: str, body: str, note: str = "") -> None:
    parts: list[Any] = [Text.from_markup(body)]
    if note:
        parts.append(Text.from_markup(f"\n[dim]{note}[/dim]"))
    console.print(Panel(Group(*parts), title=f"[bold]{title}[/bold]", title_align="left", width=WIDTH))


def where_to_look(console: Console, front: FrontEnds, held: bool) -> None:
    """Where a newcomer goes next: the API and its docs, the bot, and a real Slack workspace."""
    api, auth = front.api.url.removeprefix("http://"), 'curl -sH "Authorization: Bearer $TOKEN"'
    state = "up until you press Enter" if held else "stopped at the end; `tickwatch api` / `tickwatch bot` run yours"
    lines = [
        f"\n[bold]Front-ends[/bold] ({state}):",
        f"  API docs    {front.api.url}/docs",
        f"  API         export TOKEN={API_TOKEN}   [dim]# the demo's admin token[/dim]",
        f"              {auth} {api}/v1/symbols",
        f"              {auth} '{api}/v1/anomalies?symbol=TSLA&limit=5'",
        f"  Slack bot   POST {front.bot.url}/slack/events",
        "  Real Slack  SLACK_BOT_TOKEN=xoxb-… make demo   [dim]# alerts go to your channel[/dim]",
        "              tickwatch bot manifest --url https://YOUR-HOST   [dim]# bot/manifest.yml → a new app[/dim]",
        "              SLACK_SIGNING_SECRET=… tickwatch bot --port 3000   [dim]# or --socket, no public URL[/dim]",
    ]
    for line in lines:
        console.print(line, soft_wrap=True)
