"""The command line as users meet it: help with examples, and failures a user can act on — one line saying
what is wrong and what to do, a non-zero exit, no traceback (unless --debug)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from typer.testing import CliRunner

from tickwatch.cli import COMMAND_ORDER, app
from tickwatch.errors import explain
from tickwatch.fleet import env_for

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data"
TICKWATCH = Path(sys.executable).parent / "tickwatch"  # the console script, as installed by uv sync


@pytest.mark.parametrize(
    "command",
    [
        ["stack", "up"],
        ["stack", "init"],
        ["stack", "down"],
        ["stack", "status"],
        ["demo"],
        ["generate"],
        ["worker"],
        ["bridge"],
        ["digest"],
        ["mute"],
        ["unmute"],
        ["mutes"],
        ["threshold"],
        ["audit"],
        ["bench"],
        ["retention"],
    ],
)
def test_every_command_has_help_with_an_example(command: list[str]):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and "Example" in result.output


def test_commands_are_listed_in_the_order_a_newcomer_meets_them():
    text = runner.invoke(app, ["--help"], terminal_width=200).output
    listed = re.findall(r"^│ (\w+) ", text.split("Commands", 1)[1], re.MULTILINE)  # wrapped lines start blank
    assert listed[:3] == ["stack", "demo", "generate"] and listed[-1] == "retention"
    assert listed == sorted(listed, key=list(COMMAND_ORDER).index)


def test_generate_examples_are_in_the_help():
    text = runner.invoke(app, ["generate", "--help"], terminal_width=200).output
    assert "drop:TSLA:8%:90s@10m" in text and "--tz America/New_York --shift-to now" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inject", "crash:TSLA"], "expected kind:symbol:pct%:duration@offset"),
        (["--csv", "no-equals-sign.csv"], "--csv takes SYMBOL=path.csv"),
        (["--duration", "soon"], "soon"),
        (["--tz", "America/New_York"], "--tz, --columns and --skip-bad-rows apply to --csv replay"),
        (["--csv", f"X={DATA / 'messy_export.csv'}", "--tz", "Europe/Nowhere"], "unknown time zone 'Europe/Nowhere'"),
        (["--csv", f"X={DATA / 'messy_export.csv'}", "--columns", "close=Close"], "--columns needs time"),
        (["--csv", f"X={DATA / 'messy_export.csv'}", "--shift-to", "soon"], "--shift-to takes now or an ISO-8601"),
        (["--start", "2026-11-23T14:30:00Z", "--shift-to", "now"], "give --start or --shift-to, not both"),
    ],
)
def test_generate_rejects_bad_input_before_touching_kafka(args: list[str], message: str):
    result = runner.invoke(app, ["generate", "--topic", "never-created", *args], terminal_width=200)
    assert result.exit_code == 2
    assert message in result.output


# --- failures, as the installed command shows them --------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tickwatch(*args: str, module: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tickwatch"] if module else [str(TICKWATCH)]
    return subprocess.run(
        [*command, *args],
        env=env_for(env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The whole output of a failed command, asserted to be one line without a traceback."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize("module", [False, True], ids=["script", "python -m"])
def test_a_missing_csv_names_the_path(module: bool):
    result = tickwatch("generate", "--csv", "AAPL=aapl-2026.csv", module=module)
    assert result.returncode == 2
    assert one_line(result) == "✘ aapl-2026.csv: No such file or directory — check the path"


def test_an_unknown_layout_names_file_and_line_and_the_way_out():
    result = tickwatch("generate", "--csv", f"X={DATA / 'custom_columns.csv'}")
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"✘ {DATA / 'custom_columns.csv'}:1: unknown layout: header Ticker,Date,Time,Last,Vol")
    assert "--columns" in line


def test_a_bad_speed_says_what_speeds_are():
    result = tickwatch("generate", "--speed", "fast")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--speed'" in result.stderr
    assert "speed must be max or a number > 0 (1 = real time, 60 = a minute per second); got 'fast'" in " ".join(
        result.stderr.replace("│", " ").split()
    )


def test_kafka_unreachable_says_to_start_the_stack():
    port = closed_port()
    result = tickwatch(
        "generate",
        "--count",
        "3",
        TICKWATCH_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        TICKWATCH_KAFKA_CONNECT_TIMEOUT_SECONDS="1",
    )
    assert result.returncode == 1
    assert one_line(result) == f"✘ Kafka at 127.0.0.1:{port} is not reachable — is the stack up? `tickwatch stack up`"


def test_a_missing_topic_fails_at_once_instead_of_after_a_minute(real_stack):
    topic = f"tw-missing-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    result = tickwatch(
        "generate", "--count", "3", "--topic", topic, TICKWATCH_KAFKA_BOOTSTRAP=real_stack.kafka_bootstrap
    )
    assert result.returncode == 2 and time.monotonic() - began < 30  # the producer alone waits 60 s for metadata
    assert one_line(result) == (
        f"✘ topic '{topic}' does not exist on Kafka at {real_stack.kafka_bootstrap}; nothing "
        "was published — `tickwatch stack init` creates the configured topics"
    )


def test_elasticsearch_unreachable_says_to_start_the_stack():
    url = f"http://127.0.0.1:{closed_port()}"
    result = tickwatch("retention", "--days", "7", TICKWATCH_ES_URL=url)
    assert result.returncode == 1
    assert one_line(result) == f"✘ Elasticsearch at {url} is not reachable — is the stack up? `tickwatch stack up`"


def test_redis_unreachable_says_to_start_the_stack(monkeypatch: pytest.MonkeyPatch):
    """Through `explain`, as no core command fails fast on Redis: a Celery worker waits for its broker."""
    from pipeline.settings import get_settings

    url = f"redis://127.0.0.1:{closed_port()}/0"
    monkeypatch.setenv("TICKWATCH_REDIS_URL", url)
    get_settings.cache_clear()
    try:
        message = explain(_raised(Redis.from_url(url).ping)).message
    finally:
        get_settings.cache_clear()
    assert message == f"Redis at {url} is not reachable — is the stack up? `tickwatch stack up`"


def test_an_invalid_setting_names_the_variable_and_what_is_allowed():
    result = tickwatch("worker", TICKWATCH_DROP_PCT="-5")
    assert result.returncode == 2
    assert one_line(result) == (
        "✘ invalid setting TICKWATCH_DROP_PCT=-5: Input should be greater than or equal to 0 "
        "— fix it in the environment or .env (see docs/configuration.md)"
    )


def test_an_invalid_secret_setting_is_named_but_never_printed():
    result = tickwatch("worker", TICKWATCH_API_TOKENS='[{"name": "ops", "token": "short-secret", "scope": "admin"}]')
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("✘ invalid setting TICKWATCH_API_TOKENS[0].token: ") and "short-secret" not in line


@pytest.mark.parametrize(("args", "env"), [(["--debug"], {}), ([], {"TICKWATCH_DEBUG": "1"})])
def test_debug_shows_the_traceback(args: list[str], env: dict[str, str]):
    result = tickwatch(*args, "generate", "--csv", "AAPL=aapl-2026.csv", **env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "FileNotFoundError" in result.stderr


def test_an_unexpected_error_is_one_line_pointing_at_debug():
    failure = explain(RuntimeError("the flux capacitor is empty"))
    assert failure.exit_code == 1
    assert failure.message == (
        "unexpected RuntimeError: the flux capacitor is empty — run again with --debug "
        "(or TICKWATCH_DEBUG=1) to see the traceback"
    )


def _raised(call) -> Exception:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("expected an exception")


@pytest.mark.parametrize("days", ["0", "-3"])
def test_retention_refuses_to_keep_no_days(days: str):
    """`--days 0` or less would delete today's ticks too: refused before Elasticsearch is asked."""
    result = runner.invoke(app, ["retention", "--days", days], env={"TICKWATCH_ES_URL": "http://127.0.0.1:1"})
    assert result.exit_code == 2 and "greater than or equal to 1" in result.output


def test_worker_refuses_to_mix_tick_batches_and_deliveries_in_one_pool():
    result = tickwatch("worker", "--queues", "ticks,alerts")
    assert result.returncode == 2
    assert "share no pool" in one_line(result) and "tickwatch worker" in one_line(result)


@pytest.mark.parametrize("command", ["api", "bot"])
def test_a_port_in_use_is_one_line_naming_it_and_the_flag(command: str):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tickwatch(command, "--port", str(port), SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")
    assert result.returncode == 2
    assert (
        one_line(result)
        == f"✘ port {port} on 127.0.0.1 is already in use — pass another with --port, e.g. --port {port + 1}"
    )


def test_digest_post_without_a_token_says_to_set_it_as_the_bot_does():
    result = tickwatch("digest", "--post")
    assert result.returncode == 2
    assert one_line(result) == "✘ set SLACK_BOT_TOKEN (xoxb-…, the Slack app's OAuth & Permissions page) first"


def test_a_setting_that_is_not_json_names_it_and_its_form():
    result = tickwatch("worker", TICKWATCH_API_TOKENS="garbage")
    assert result.returncode == 2 and "TICKWATCH_API_TOKENS: not a value it takes (JSON list" in one_line(result)
    assert "garbage" not in one_line(result)
