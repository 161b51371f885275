"""docker-compose.yml is for users with Docker. No engine runs here, so the file is loaded with compose-go, the
library `docker compose` itself uses (stack/compose_loader: interpolation, anchors and merges, profiles, schema
validation, depends_on conditions, healthchecks, volumes), and the wiring is asserted on what it resolves."""

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
LOADER = ROOT / "stack" / "compose_loader"
TICKWATCH_SERVICES = ("init", "worker", "deliveries", "bridge", "api", "bot")


@pytest.fixture(scope="session")
def loader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loader, built once per session (Go's build cache makes later sessions quick)."""
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain: the compose file is loaded with compose-go")
    binary = tmp_path_factory.mktemp("compose") / "compose_loader"
    built = subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=LOADER, capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    return binary


def compose_config(loader: Path, env: dict[str, str], *profiles: str) -> dict[str, Any]:
    """The project as `docker compose --profile … config` resolves it, with `env` as the shell's environment."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("TICKWATCH_", "SLACK_"))}
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [str(loader), "--file", "docker-compose.yml", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_broken_compose_file_is_refused(loader: Path, tmp_path: Path) -> None:
    """The loader validates: a test that passed on any file would prove nothing."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x\n    depends_on:\n      redis: {condition: service_happy}\n")
    result = subprocess.run([str(loader), "--file", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "compose file invalid" in result.stderr


def test_stack_services_are_wired_to_each_other(loader: Path) -> None:
    services = compose_config(loader, {"SLACK_BOT_TOKEN": "xoxb-from-env", "TICKWATCH_SLACK_CHANNEL": "#desk"})[
        "services"
    ]
    assert "bot" not in services  # its profile is off
    for name in ("kafka", "elasticsearch", "redis", "api", "worker", "deliveries", "bridge"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("init", "worker", "deliveries", "bridge", "api"):
        environment = services[name]["environment"]
        assert environment["TICKWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert environment["TICKWATCH_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["TICKWATCH_ES_URL"] == "http://elasticsearch:9200"
        assert environment["SLACK_BOT_TOKEN"] == "xoxb-from-env"
        assert environment["TICKWATCH_SLACK_CHANNEL"] == "#desk"
        depends_on = services[name]["depends_on"]
        for engine in ("kafka", "elasticsearch", "redis"):
            assert depends_on[engine]["condition"] == "service_healthy"
    for name in ("worker", "deliveries", "bridge", "api", "airflow"):
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].startswith("PLAINTEXT://kafka:9092")
    # tick batches and deliveries never share a pool
    assert services["worker"]["command"][-4:] == ["--queues", "ticks", "-c", "2"]
    assert services["deliveries"]["command"][2:6] == ["--queues", "alerts", "--pool", "threads"]
    # a worker's healthcheck pings it by its own host name ($$ in the file: the container's, not the host's)
    assert '"@$HOSTNAME"' in services["worker"]["healthcheck"]["test"][1]


def test_airflow_is_built_from_its_pinned_image_not_installed_at_start(loader: Path) -> None:
    airflow = compose_config(loader, {})["services"]["airflow"]
    assert airflow["build"]["dockerfile"] == "dags/Dockerfile"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in airflow["environment"]
    dockerfile = (ROOT / "dags" / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2" in dockerfile and "airflow-requirements.txt" in dockerfile


def test_the_tickwatch_image_installs_exactly_the_lock(loader: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in dockerfile and "pip install ." not in dockerfile
    bases = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert all(":" in base and not base.endswith(":latest") for base in bases), bases  # pinned
    assert dockerfile.index("COPY pyproject.toml uv.lock") < dockerfile.index("COPY pipeline")  # deps layer first


def test_slack_settings_have_working_defaults_and_empty_means_unset(loader: Path) -> None:
    env = {name: "" for name in ("SLACK_BOT_TOKEN", "TICKWATCH_SLACK_CHANNEL", "TICKWATCH_SLACK_API_URL")}
    worker = compose_config(loader, env)["services"]["worker"]["environment"]
    assert worker["SLACK_BOT_TOKEN"] == ""
    assert worker["TICKWATCH_SLACK_CHANNEL"] == "#market-alerts"
    assert worker["TICKWATCH_SLACK_API_URL"] == "https://slack.com/api/"
    assert worker["TICKWATCH_SECRET_KEYS"] == ""  # empty: unset for Tickwatch (a key is generated), not a key


def test_every_tickwatch_service_runs_a_command_the_cli_has(loader: Path) -> None:
    """A renamed command or option fails here, not at `docker compose up` on someone's machine."""
    services = compose_config(loader, {}, "slack")["services"]
    for name in TICKWATCH_SERVICES:
        command = services[name]["command"]
        assert command[0] == "tickwatch", name
        shown = subprocess.run(
            [sys.executable, "-m", "tickwatch", *command[1:], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert shown.returncode == 0, f"{name}: {' '.join(command)} is not a valid command:\n{shown.stderr}"


def test_tickwatch_services_share_the_secret_key_and_the_bot_waits_for_its_profile(loader: Path) -> None:
    services = compose_config(loader, {"SLACK_SIGNING_SECRET": "s3cret"}, "slack")["services"]
    for name in TICKWATCH_SERVICES:
        assert any(
            v["target"] == "/var/tmp/tickwatch" and v["source"] == "tickwatch-state" for v in services[name]["volumes"]
        )
        assert "TICKWATCH_SECRET_KEYS" in services[name]["environment"], name
    assert services["bot"]["profiles"] == ["slack"]
    assert services["bot"]["environment"]["SLACK_SIGNING_SECRET"] == "s3cret"
