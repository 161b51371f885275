"""`tickwatch token create | list | revoke` and `tickwatch api` as a user runs them (the real console script,
its own Redis database), and a created token accepted by the served API."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis

from pipeline import tokens
from pipeline.settings import Settings
from tests.conftest import redis_url_for
from tickwatch.fleet import env_for

TICKWATCH = Path(sys.executable).parent / "tickwatch"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_token_lifecycle_and_the_served_api(real_stack: Settings, fresh_redis: Redis):
    db = fresh_redis.connection_pool.connection_kwargs["db"]
    env = env_for(
        {
            "TICKWATCH_REDIS_URL": redis_url_for(real_stack, db),
            "TICKWATCH_ES_URL": real_stack.es_url,
            "TICKWATCH_KAFKA_BOOTSTRAP": real_stack.kafka_bootstrap,
            "TICKWATCH_API_TOKENS": '[{"name": "from-env", "token": "env-token-0123456789", "scope": "read"}]',
        }
    )

    def tickwatch(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(TICKWATCH), *args], env=env, capture_output=True, text=True, timeout=60)

    created = tickwatch("token", "create", "--name", "ops", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith(tokens.TOKEN_PREFIX)
    assert tokens.authenticate(fresh_redis, Settings(), token).name == "ops"  # only its hash is stored

    listed = tickwatch("token", "list")
    assert "ops" in listed.stdout and "admin" in listed.stdout and "from-env" in listed.stdout
    assert token not in listed.stdout
    again = tickwatch("token", "create", "--name", "ops")
    assert again.returncode == 2 and "exists" in again.stdout
    bad_scope = tickwatch("token", "create", "--name", "x", "--scope", "root")
    assert bad_scope.returncode == 2 and "scope" in bad_scope.stdout

    port = _free_port()
    server = subprocess.Popen(
        [str(TICKWATCH), "api", "--port", str(port), "--loglevel", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "tickwatch api did not start"
                time.sleep(0.2)
        assert client.get("/v1/mutes", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/docs").status_code == 200

        revoked = tickwatch("token", "revoke", "ops")
        assert revoked.returncode == 0
        assert client.get("/v1/mutes", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert tickwatch("token", "revoke", "ops").returncode == 1
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("command", [["api"], ["token", "create"], ["token", "list"], ["token", "revoke"], ["seed"]])
def test_the_commands_have_help_with_examples(command: list[str]):
    result = subprocess.run(
        [str(TICKWATCH), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env_for({}), "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    if command != ["token", "list"]:
        assert "Example" in result.stdout
