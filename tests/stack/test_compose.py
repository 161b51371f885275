"""docker-compose.yml is for users with Docker; Compose's own parser checks it without a Docker engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compose_config(env: dict[str, str]) -> dict[str, Any]:
    """`docker compose config` resolves anchors, defaults and interpolation client-side, as `up` would."""
    if shutil.which("docker") is None:
        pytest.skip("the docker client is not installed")
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("the docker compose v2 plugin is not installed (`docker compose` is unknown)")
    result = subprocess.run(
        ["docker", "compose", "--file", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_stack_services_are_wired_to_each_other() -> None:
    config = compose_config({"SLACK_BOT_TOKEN": "xoxb-from-env", "TICKWATCH_SLACK_CHANNEL": "#desk"})
    services = config["services"]

    assert {"kafka", "elasticsearch", "redis", "init", "worker", "bridge"} <= services.keys()
    for name in ("kafka", "elasticsearch", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("init", "worker", "bridge"):
        environment = services[name]["environment"]
        assert environment["TICKWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert environment["TICKWATCH_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["TICKWATCH_ES_URL"] == "http://elasticsearch:9200"
        assert environment["SLACK_BOT_TOKEN"] == "xoxb-from-env"
        assert environment["TICKWATCH_SLACK_CHANNEL"] == "#desk"
        depends_on = services[name]["depends_on"]
        for engine in ("kafka", "elasticsearch", "redis"):
            assert depends_on[engine]["condition"] == "service_healthy"
    for name in ("worker", "bridge"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].startswith("PLAINTEXT://kafka:9092")


def test_slack_settings_have_working_defaults_when_unset() -> None:
    env = {name: "" for name in ("SLACK_BOT_TOKEN", "TICKWATCH_SLACK_CHANNEL", "TICKWATCH_SLACK_API_URL")}
    worker = compose_config(env)["services"]["worker"]["environment"]

    assert worker["SLACK_BOT_TOKEN"] == ""
    assert worker["TICKWATCH_SLACK_CHANNEL"] == "#market-alerts"
    assert worker["TICKWATCH_SLACK_API_URL"] == "https://slack.com/api/"


def compose_file() -> dict[str, Any]:
    """The file as YAML (anchors and merge keys resolved; `${…}` left as written): checkable without Docker."""
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_tickwatch_service_runs_a_command_the_cli_has() -> None:
    """A renamed command or option fails here, not at `docker compose up` on someone's machine."""
    services = {
        name: spec for name, spec in compose_file()["services"].items() if spec.get("image") == "tickwatch:latest"
    }
    assert {"init", "worker", "bridge", "api", "bot"} <= services.keys()
    for name, spec in services.items():
        command = spec["command"]
        assert command[0] == "tickwatch", name
        shown = subprocess.run(
            [sys.executable, "-m", "tickwatch", *command[1:], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert shown.returncode == 0, f"{name}: {' '.join(command)} is not a valid command:\n{shown.stderr}"


def test_tickwatch_services_share_the_secret_key_and_the_bot_waits_for_its_profile() -> None:
    services = compose_file()["services"]
    for name in ("init", "worker", "bridge", "api", "bot"):
        assert "tickwatch-state:/var/tmp/tickwatch" in services[name]["volumes"], name
        assert "TICKWATCH_SECRET_KEYS" in services[name]["environment"], name
    assert services["bot"]["profiles"] == ["slack"]
    assert {"SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"} <= services["bot"]["environment"].keys()
