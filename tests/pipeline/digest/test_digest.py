"""The daily digest: day bounds, silence detection and Slack limits as pure functions; the numbers over a seeded
day in the real Elasticsearch; `tickwatch digest` posting to the fake Slack, once per day, edits on re-runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from ipaddress import ip_network

import pytest
from redis import Redis

from pipeline import store
from pipeline.context import slack_client
from pipeline.digest import message as digest_message
from pipeline.digest import posting as digest_posting
from pipeline.digest import summary as digest
from pipeline.digest.dead_letters import dead_letters
from pipeline.groups import Group
from pipeline.settings import Settings
from pipeline.webhooks import subscriptions
from stack.fake_slack import FakeSlack
from tests.pipeline.digest.day import DAY, seed

# --- pure parts --------------------------------------------------------------------------------------------


def test_day_bounds_in_utc_and_across_dst() -> None:
    assert digest.day_bounds(date(2026, 11, 20), "UTC") == (
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 21, tzinfo=UTC),
    )
    start, end = digest.day_bounds(date(2026, 11, 1), "America/New_York")  # clocks go back: 25 hours
    assert (start, end - start) == (datetime(2026, 11, 1, 4, tzinfo=UTC), timedelta(hours=25))
    start, end = digest.day_bounds(date(2026, 3, 8), "America/New_York")  # clocks go forward: 23 hours
    assert (start, end - start) == (datetime(2026, 3, 8, 5, tzinfo=UTC), timedelta(hours=23))
    start, _ = digest.day_bounds(date(2026, 11, 20), "Asia/Tokyo")
    assert start == datetime(2026, 11, 19, 15, tzinfo=UTC)


def test_last_complete_day_is_yesterday_in_the_digest_zone() -> None:
    now = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # still the 20th in New York
    assert digest.last_complete_day("UTC", now) == date(2026, 11, 20)
    assert digest.last_complete_day("America/New_York", now) == date(2026, 11, 19)


def test_silences_find_gaps_late_starts_and_early_stops() -> None:
    slot = timedelta(minutes=15)
    w = 15 * 60_000
    slots = {"FULL": [0, w, 2 * w, 3 * w, 4 * w], "GAP": [0, 3 * w, 4 * w], "STOP": [0, w], "LATE": [2 * w, 4 * w]}
    assert digest.silences(slots, slot) == [("STOP", 45, True), ("GAP", 30, False), ("LATE", 30, False)]
    assert digest.silences({}, slot) == []


def test_fit_cuts_whole_lines_and_says_how_many() -> None:
    text = "\n".join(f"line {i:04d}" for i in range(1000))
    cut = digest_message.fit(text, 3000)
    assert len(cut) <= 3000
    assert cut.endswith("more lines")
    kept = cut.splitlines()[:-1]
    assert kept == text.splitlines()[: len(kept)]
    assert cut.splitlines()[-1] == f"… {1000 - len(kept)} more lines"
    assert digest_message.fit("short") == "short"


def _big_digest() -> digest.Digest:
    """A digest with far more rows than Slack can show, and long names, to test the limits."""
    start, end = digest.day_bounds(DAY, "UTC")
    symbol = "VERYLONG.SYMBOL-NAME"
    day = digest.SymbolDay(
        symbol=symbol,
        open=1e6,
        close=2e6,
        low=1.0,
        high=3e6,
        first_at=start,
        last_at=end,
        ticks=10**7,
        late=10**5,
        change_pct=100.0,
        drawdown_pct=-99.99,
        rise_pct=200.0,
    )
    return digest.Digest(
        day=DAY,
        tz="UTC",
        start=start,
        end=end,
        generated_at=end,
        symbols=20_000,
        ticks=10**10,
        truncated=True,
        movers=[day] * 10,
        drawdowns=[day] * 10,
        rises=[day] * 10,
        anomalies=[
            digest.RuleCount(symbol=f"S{i}", rule="drop", total=999, acknowledged=1, open=998, resolved=0, muted=3)
            for i in range(100)
        ],
        anomaly_pairs=500,
        anomalies_total=499_500,
        acknowledged_total=500,
        mute_changes=[digest.MuteEntry(symbol=symbol, action="mute", by="x" * 200, at=start, reason="r" * 500)] * 100,
        muted_at_end=[digest.MuteEntry(symbol=symbol, action="mute", by="y" * 200, at=start, reason="z" * 500)] * 100,
        health=digest.Health(
            late_ticks=10**6,
            late_by_symbol=[(symbol, 10**5)] * 10,
            suspect_ticks=10**5,
            suspect_by_symbol=[(symbol, 10**4)] * 10,
            dead_letters=None,
            silent=[digest.Silence(symbol=symbol, last_at=start, silent_minutes=600, stopped_early=True)] * 10,
            silent_total=5000,
            silence_minutes=15,
        ),
        paths={},
        timings_ms={},
    )


def test_blocks_stay_within_slacks_limits() -> None:
    big = _big_digest()
    blocks = [block.to_dict() for block in digest_message.blocks(big)]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    anomalies = next(b["text"]["text"] for b in blocks if b["type"] == "section" and "Anomalies" in b["text"]["text"])
    assert f"and {500 - digest_message.ANOMALY_LINES} more" in anomalies
    assert len(digest_message.message(big)["text"]) <= 4000
    assert "dead letters: unknown (Kafka unreachable)" in posted_numbers(blocks)
    assert digest_message.chart(big) is None  # no paths, no chart


def test_unreachable_kafka_leaves_dead_letters_unknown_instead_of_failing() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", kafka_connect_timeout_seconds=1)
    start, end = digest.day_bounds(DAY, "UTC")
    assert dead_letters(settings, start, end) is None


# --- over the real Elasticsearch ---------------------------------------------------------------------------


def test_digest_of_a_seeded_day_has_the_numbers_the_seed_implies(namespace) -> None:
    expected = seed(namespace.settings)
    es, indices = store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix)
    summary = digest.build(es, indices, namespace.settings, DAY)
    assert (summary.symbols, summary.ticks) == (expected.symbols, expected.ticks)
    assert (summary.anomalies_total, summary.acknowledged_total) == (expected.anomalies, expected.acknowledged)
    assert [(c.symbol, c.rule, c.total, c.acknowledged, c.open, c.resolved, c.muted) for c in summary.anomalies] == [
        ("AAA", "drop", 2, 1, 1, 0, 0),
        ("BBB", "drop", 1, 1, 0, 1, 1),
    ]
    movers = {m.symbol: m for m in summary.movers}
    assert (movers["AAA"].open, movers["AAA"].close, movers["AAA"].low, movers["AAA"].high) == (100, 102, 90, 104)
    assert movers["BBB"].change_pct == pytest.approx(-10.0)
    assert movers["CCC"].change_pct == pytest.approx(5.0)
    assert [m.symbol for m in summary.movers] == ["BBB", "CCC", "AAA", "DDD"]
    assert [m.symbol for m in summary.drawdowns] == ["AAA", "BBB"]  # -10 % each, by name
    assert [m.symbol for m in summary.rises] == ["CCC", "AAA"]
    assert summary.health.late_ticks == expected.late
    assert summary.health.late_by_symbol == [("AAA", 10)]
    assert (summary.health.suspect_ticks, summary.health.suspect_by_symbol) == (expected.suspect, [("CCC", 1)])
    assert movers_low_ccc(summary) == 20.0  # the bad print at 2.0 is not the day's low
    assert summary.health.dead_letters == expected.dead_letters
    silent = {s.symbol: s for s in summary.health.silent}
    assert set(silent) == {"CCC", "DDD"}
    assert silent["CCC"].stopped_early and silent["CCC"].last_at == datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    assert not silent["DDD"].stopped_early and 75 <= silent["DDD"].silent_minutes <= 90
    assert [(m.symbol, m.by, m.reason) for m in summary.muted_at_end] == [("CCC", "bob", "halted")]
    assert [(m.symbol, m.action) for m in summary.mute_changes] == [("CCC", "mute"), ("DDD", "mute")]
    assert set(summary.paths) == {"AAA", "BBB", "CCC", "DDD"}
    assert summary.paths["BBB"][0][1] == 100.0 and summary.paths["BBB"][-1][1] == pytest.approx(90.0)
    assert min(value for _, value in summary.paths["CCC"]) == 100.0  # the bad print at 2.0 is not drawn either
    for path in summary.paths.values():  # the lines never run back in time (CCC stops mid-interval at 17:00)
        assert [at for at, _ in path] == sorted(at for at, _ in path)
    png = digest_message.chart(summary)
    assert png is not None and png.startswith(b"\x89PNG")
    overview = digest_message.message(summary)["blocks"][1]["text"]["text"]
    assert f"*{expected.ticks:,}* ticks" in overview and "*3* anomalies (2 acknowledged)" in overview
    by_group = digest.build(
        es, indices, namespace.settings, DAY, groups={"ab": Group("ab", ("AAA", "B*")), "zz": Group("zz", ("ZZZ",))}
    )
    (ab,) = by_group.groups  # a group none of whose members traded is left out
    assert (ab.name, ab.symbols, ab.worst, ab.worst_pct) == ("ab", 2, "BBB", pytest.approx(-10.0))
    assert ab.anomalies == sum(c.total for c in summary.anomalies if c.symbol in ("AAA", "BBB"))
    assert "*group:ab* " in str(digest_message.message(by_group)["blocks"])
    # 20 November 2026 is a Friday: the mutes in force are listed with their age, for review before the weekend
    assert summary.reviews_mutes
    # the week's alerts: BBB's of the day before count too; none was acknowledged with a reason
    assert [(n.symbol, n.rule, n.alerts, n.suggested) for n in summary.noisiest][:2] == [
        ("AAA", "drop", 2, None),
        ("BBB", "drop", 2, None),
    ]
    assert "The week's noisiest rules" in str(digest_message.message(summary)["blocks"])
    mutes = next(b["text"]["text"] for b in digest_message.message(summary)["blocks"] if "Mutes" in str(b))
    assert "going into the weekend" in mutes and "*CCC* muted by bob" in mutes and " already — halted" in mutes


def movers_low_ccc(summary: digest.Digest) -> float:
    return next(m.low for m in summary.movers if m.symbol == "CCC")


def test_an_empty_day_is_a_digest_too(namespace) -> None:
    es, indices = store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix)
    summary = digest.build(es, indices, namespace.settings, DAY)
    assert (summary.symbols, summary.ticks, summary.anomalies_total, summary.paths) == (0, 0, 0, {})
    message = digest_message.message(summary)
    assert message["text"].startswith("Market digest 2026-11-20 (UTC): no ticks stored, 0 anomalies")
    sections = posted_numbers(message["blocks"])
    assert "_No ticks stored for this day_" in sections and "*Anomalies* · none" in sections
    assert "chart" not in message["blocks"][-1]["elements"][0]["text"]  # no chart to point at
    holiday = digest_message.message(digest.build(es, indices, namespace.settings, date(2026, 11, 26)))
    assert "📅 XNYS closed: Thanksgiving" in posted_numbers(holiday["blocks"])


def _one_of_each() -> digest.Digest:
    """A digest in which every count is 1, for the grammar."""
    start, end = digest.day_bounds(DAY, "UTC")
    day = digest.SymbolDay(
        symbol="AAA",
        open=10,
        close=11,
        low=9,
        high=12,
        first_at=start,
        last_at=end,
        ticks=1,
        late=1,
        change_pct=10,
        drawdown_pct=-10,
        rise_pct=20,
    )
    return digest.Digest(
        day=DAY,
        tz="UTC",
        start=start,
        end=end,
        generated_at=end,
        symbols=1,
        ticks=1,
        truncated=False,
        movers=[day],
        drawdowns=[day],
        rises=[day],
        anomalies=[digest.RuleCount(symbol="AAA", rule="drop", total=1, acknowledged=0, open=1, resolved=0, muted=0)],
        anomaly_pairs=1,
        anomalies_total=1,
        acknowledged_total=0,
        mute_changes=[],
        muted_at_end=[],
        health=digest.Health(
            late_ticks=1,
            late_by_symbol=[("AAA", 1)],
            suspect_ticks=1,
            suspect_by_symbol=[],
            dead_letters=1,
            silent=[],
            silent_total=1,
            silence_minutes=15,
        ),
        paths={},
        timings_ms={},
    )


def test_counts_of_one_are_singular() -> None:
    one = _one_of_each()
    assert digest_message.text(one).splitlines() == [
        "Market digest 2026-11-20 (UTC): 1 symbol, 1 tick, 1 anomaly (0 acknowledged).",
        "Top movers: AAA +10.00%.",
        "Drawdowns: AAA -10.00%.",
        "Rises: AAA +20.00%.",
        "Data health: 1 late tick, 1 suspect tick, 1 dead letter, 1 silent symbol.",
    ]
    overview = digest_message.message(one)["blocks"][1]["text"]["text"]
    assert overview == "*1* symbol traded · *1* tick · *1* anomaly (0 acknowledged)"


def test_a_day_not_over_says_where_its_figures_stop() -> None:
    partial = _one_of_each().model_copy(update={"generated_at": datetime(2026, 11, 20, 18, 5, tzinfo=UTC)})
    assert not partial.complete and _one_of_each().complete
    assert "The day is not over: figures up to 18:05." in digest_message.text(partial)
    assert "_The day is not over: figures up to 18:05._" in digest_message.message(partial)["blocks"][1]["text"]["text"]
    assert digest.Digest.model_validate_json(partial.model_dump_json()) == partial  # through XCom and back


def test_a_run_that_finds_another_posting_sends_nothing_and_a_stale_claim_is_taken_over(namespace) -> None:
    es, indices = store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix)
    summary = digest.build(es, indices, namespace.settings, DAY)
    index = digest_posting.ensure_digests_index(es, indices)
    with FakeSlack() as slack:
        settings = namespace.settings.model_copy(update={"slack_api_url": slack.url, "slack_bot_token": "xoxb-t"})
        client = slack_client(settings)
        doc_id = f"{DAY.isoformat()}|#desk"
        es.index(
            index=index,
            id=doc_id,
            refresh=True,
            document={"day": DAY.isoformat(), "channel": "#desk", "claimed_at": minutes_ago(1)},
        )
        with pytest.raises(digest_posting.DigestBusy, match="another run has been posting"):
            digest_posting.post(
                summary, digest_message.message(summary), settings, es, indices, client, channel="#desk"
            )
        assert slack.calls() == []

        es.index(
            index=index,
            id=doc_id,
            refresh=True,
            document={"day": DAY.isoformat(), "channel": "#desk", "claimed_at": minutes_ago(11)},
        )
        posted = digest_posting.post(
            summary, digest_message.message(summary), settings, es, indices, client, channel="#desk"
        )
        assert not posted.updated and [c.params["channel"] for c in slack.calls("chat.postMessage")] == ["#desk"]
        assert digest_posting.posted_message(es, indices, DAY, "#desk")["ts"] == posted.ts


def minutes_ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


# --- tickwatch digest --post --------------------------------------------------------------------------------


def _cli(namespace, slack: FakeSlack | str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """`tickwatch digest --date DAY *args` against `slack` (the fake, or any API URL)."""
    env = {
        **namespace.env,
        "TICKWATCH_SLACK_API_URL": slack if isinstance(slack, str) else slack.url,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "TICKWATCH_DIGEST_CHANNEL": "#market-digest",
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tickwatch", "digest", "--date", DAY.isoformat(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=os.getcwd(),
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def test_a_post_slack_never_got_is_one_clear_line_and_the_next_run_posts_at_once(namespace) -> None:
    seed(namespace.settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"
    failed = _cli(namespace, closed, "--post", ok=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [
        f"✘ Slack at {closed} is not reachable ([Errno 111] Connection refused) — check TICKWATCH_SLACK_API_URL "
        "and the network"
    ]
    with FakeSlack() as slack:
        slack.fail_next("chat.postMessage", status=500, retry_after=None)
        refused = _cli(namespace, slack, "--post", ok=False)
        assert refused.stderr.strip().splitlines() == [
            "✘ Slack refused chat.postMessage: fatal_error — check SLACK_BOT_TOKEN, and that the bot is invited to "
            "the channel"
        ]
        _cli(namespace, slack, "--post")  # not "another run is posting": the failed runs left no claim behind
        assert len([c for c in slack.calls("chat.postMessage") if c.ok]) == 1


def posted_numbers(blocks: list[dict]) -> str:
    return "\n".join(b["text"]["text"] for b in blocks if b.get("type") == "section")


def subscribe_to_digests(settings: Settings) -> str:
    """A webhook subscription to digest.daily (on loopback, so allowed explicitly); returns its id."""
    allowed = settings.model_copy(update={"webhook_allow_networks": [ip_network("127.0.0.0/8")]})
    spec = subscriptions.SubscriptionSpec(url="http://127.0.0.1:9/hook", events=["digest.daily"])
    return subscriptions.create(Redis.from_url(settings.redis_url), allowed, spec)[0].id


def digest_deliveries(settings: Settings, subscription_id: str) -> list[tuple[str, str]]:
    found, _ = subscriptions.deliveries(Redis.from_url(settings.redis_url), subscription_id)
    return [(d.event_type, d.event_id) for d in found]


def test_cli_posts_once_then_edits_and_dry_run_sends_nothing(namespace) -> None:
    expected = seed(namespace.settings)
    subscription = subscribe_to_digests(namespace.settings)
    with FakeSlack() as slack:
        shown = _cli(namespace, slack)  # the terminal view
        assert f"{expected.ticks:,} ticks" in shown.stdout and not slack.calls()

        dry = _cli(namespace, slack, "--post", "--dry-run")
        assert "would post to #market-digest" in dry.stdout
        assert _cli(namespace, slack, "--dry-run").stdout == dry.stdout  # --dry-run alone means the same
        assert slack.calls() == [] and digest_deliveries(namespace.settings, subscription) == []

        _cli(namespace, slack, "--post")
        [first] = slack.calls("chat.postMessage")
        text = posted_numbers(first.params["blocks"])
        assert f"*4* symbols traded · *{expected.ticks:,}* ticks · *3* anomalies (2 acknowledged)" in text
        assert "🔴 *BBB* -10.00%" in text and "⚪ *DDD* +0.00%" in text  # DDD closed where it opened
        assert "Late ticks: 10" in text and "dead letters: 3" in text
        assert "🔕 *CCC* muted by bob until unmuted, for " in text and " already — halted" in text  # a Friday
        [upload] = slack.calls("files.completeUploadExternal")
        assert upload.params["thread_ts"] == first.response["ts"]
        file_id = upload.params["files"][0]["id"]
        assert slack.uploaded(file_id).startswith(b"\x89PNG")

        again = _cli(namespace, slack, "--post", "--dry-run")
        assert f"would update message {first.response['ts']}" in again.stdout
        _cli(namespace, slack, "--post")
        assert len(slack.calls("chat.postMessage")) == 1  # never twice
        [update] = slack.calls("chat.update")
        assert (update.params["channel"], update.params["ts"]) == (first.response["channel"], first.response["ts"])
        assert posted_numbers(update.params["blocks"]) == text
        second = slack.calls("files.completeUploadExternal")[1]
        assert second.params["thread_ts"] == first.response["ts"]

    record = digest_posting.posted_message(
        store.connect(namespace.settings), store.Indices(namespace.settings.index_prefix), DAY, "#market-digest"
    )
    assert record["runs"] == 2 and record["ts"] == first.response["ts"] and len(record["file_ids"]) == 2
    assert digest_deliveries(namespace.settings, subscription) == [("digest.daily", "msg_digest_2026-11-20")]
    [message] = namespace.topic_messages(namespace.settings.alerts_topic, expect=2, timeout=10)[:1]
    envelope = json.loads(message.value)
    assert (envelope["type"], envelope["id"]) == ("digest.daily", "msg_digest_2026-11-20")
    assert envelope["data"]["ticks"] == expected.ticks
