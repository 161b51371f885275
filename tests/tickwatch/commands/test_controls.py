"""`tickwatch mute | unmute | mutes | threshold | audit` as a user runs them, against the real Redis and ES."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from pipeline import store
from pipeline.schema import StoredTick, to_ms
from pipeline.settings import Settings
from tests.conftest import lease_database, redis_url_for, release_database
from tickwatch.fleet import env_for


@pytest.fixture
def tickwatch(real_stack: Settings) -> Iterator[Callable[..., subprocess.CompletedProcess]]:
    db = lease_database(real_stack)
    prefix = f"tw-cli{uuid.uuid4().hex[:8]}"
    env = env_for(
        {
            "TICKWATCH_REDIS_URL": redis_url_for(real_stack, db),
            "TICKWATCH_INDEX_PREFIX": prefix,
            "TICKWATCH_ES_URL": real_stack.es_url,
            "COLUMNS": "200",
        }
    )
    es = store.connect(real_stack)
    indices = store.Indices(prefix)
    store.ensure_templates(es, indices)
    store.write(
        es,
        [
            store.tick_action(
                indices,
                StoredTick(
                    **{
                        "symbol": "TSLA",
                        "ts": to_ms(datetime.now(UTC)),
                        "price": 250.0,
                        "volume": None,
                        "published": None,
                        "late": False,
                        "partition": 0,
                        "offset": 0,
                    }
                ),
            )
        ],
    )  # the one known symbol
    es.indices.refresh(index=f"{indices.ticks}-*")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tickwatch", *args], env=env, capture_output=True, text=True, timeout=60
        )

    yield run
    for name in es.indices.get(index=f"{prefix}-*"):
        es.indices.delete(index=name)
    release_database(real_stack, db)


def test_controls_from_the_terminal_are_applied_and_audited(tickwatch):
    shown = tickwatch("threshold", "tsla", "drop", "3%", "10m", "--as", "dana")
    assert shown.returncode == 0 and "3%" in shown.stdout and "override" in shown.stdout
    assert tickwatch("mute", "TSLA", "--for", "2h", "--reason", "earnings call", "--as", "dana").returncode == 0
    listed = tickwatch("mutes").stdout
    assert "TSLA" in listed and "earnings call" in listed and "dana" in listed
    assert "TSLA unmuted" in tickwatch("unmute", "tsla", "--as", "dana").stdout
    log = tickwatch("audit", "TSLA").stdout
    assert "confirmed by 2 ticks → drop 3% in 10m" in log and "muted until" in log and "unmuted" in log
    assert log.count("dana") == 3 and "cli" in log


def test_the_cli_mutes_for_an_hour_by_default_as_slack_does(tickwatch):
    def until_of_tsla() -> str:
        [row] = [line for line in tickwatch("mutes").stdout.splitlines() if "TSLA" in line]
        return row.split("│")[2].strip()  # the "until" cell

    try:
        assert tickwatch("mute", "TSLA", "--as", "dana").returncode == 0
        assert until_of_tsla().endswith("UTC")  # an hour, not forever
        assert tickwatch("mute", "TSLA", "--for", "forever", "--as", "dana").returncode == 0
        assert until_of_tsla() == "until unmuted"
    finally:
        tickwatch("unmute", "TSLA", "--as", "dana")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("threshold", "TSLA", "drop", "200%"), "percentage from 0"),
        (("threshold", "TSLA", "spike", "3%"), "unknown rule"),
        (("mute", "TSLA", "--for", "soon"), "a duration is a number with a unit"),
    ],
)
def test_bad_changes_get_one_clear_line_and_exit_2(tickwatch, args, message):
    result = tickwatch(*args)
    assert result.returncode == 2 and message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "No changes recorded" in tickwatch("audit").stdout


@pytest.mark.parametrize(
    "args", [("threshold", "TSLQ"), ("threshold", "TSLQ", "drop", "3%"), ("mute", "TSLQ"), ("unmute", "TSLQ")]
)
def test_a_symbol_never_stored_is_refused_with_the_closest_known_one(tickwatch, args):
    result = tickwatch(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "✘ no ticks stored for TSLQ; did you mean TSLA?"
    assert "No changes recorded" in tickwatch("audit").stdout and "Nothing is muted" in tickwatch("mutes").stdout


def test_the_cli_speaks_the_slash_commands_grammar_with_its_preview(tickwatch):
    def volume_row() -> str:
        return next(line for line in tickwatch("threshold", "TSLA").stdout.splitlines() if "volume" in line)

    before = volume_row()
    tried = tickwatch("threshold", "TSLA", "volume", "4x", "--preview")
    assert tried.returncode == 0 and "would have raised" in tried.stdout and "Nothing was saved" in tried.stdout
    assert volume_row() == before  # the preview saved nothing
    assert tickwatch("threshold", "TSLA", "volume", "5x", "confirm", "10s").returncode == 0
    assert "2 ticks, 10s" in volume_row() and "override" in volume_row()  # the confirmation is shown
    assert tickwatch("threshold", "TSLA", "volume", "reset").returncode == 0  # Slack's form works here too
    assert volume_row() == before


def test_groups_and_mute_kinds_from_the_terminal(tickwatch):
    made = tickwatch("group", "semis", "add", "TSLA", "NVDA", "--as", "dana")
    assert made.returncode == 0 and "group:semis: added NVDA, TSLA" in made.stdout
    set_rule = tickwatch("threshold", "group:semis", "drop", "8%", "--as", "dana")
    assert set_rule.returncode == 0, set_rule.stdout + set_rule.stderr
    assert "group:semis" in tickwatch("threshold", "TSLA").stdout  # where TSLA's drop rule comes from
    muted = tickwatch("mute", "TSLA", "until", "above", "99999", "unless", "2x", "--as", "dana")
    assert muted.returncode == 0 and "until above 99999 unless 2x" in muted.stdout
    assert "until above 99999 unless 2x" in tickwatch("mutes").stdout
    for careless in (("group", "semis", "rename"), ("mute", "TSLA", "until", "above"), ("mute", "group:nope")):
        refused = tickwatch(*careless)
        assert refused.returncode == 2 and refused.stderr.startswith("✘"), careless
    assert tickwatch("unmute", "TSLA").returncode == 0 and tickwatch("group", "semis", "delete").returncode == 0
    assert "No groups yet." in tickwatch("group").stdout
