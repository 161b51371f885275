"""Webhook secrets at rest: a private key file made safely, a planted or exposed one refused, keys rotated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from redis import Redis

from pipeline.settings import Settings
from pipeline.webhooks import encryption, subscriptions
from pipeline.webhooks.encryption import SecretKeyError


def test_the_generated_key_is_private_from_the_start(tmp_path: Path):
    key = encryption.key_file(tmp_path)
    folder, file = tmp_path / "secrets", tmp_path / "secrets" / "secret.key"
    assert (os.stat(folder).st_mode & 0o777, os.stat(file).st_mode & 0o777) == (0o700, 0o600)
    assert encryption.key_file(tmp_path) == key  # the next process reads the same key
    Fernet(key)


@pytest.mark.parametrize(("target", "mode"), [("file", 0o644), ("file", 0o606), ("directory", 0o755)])
def test_a_key_others_may_read_or_write_is_refused_with_the_fix(tmp_path: Path, target: str, mode: int):
    encryption.key_file(tmp_path)
    path = tmp_path / "secrets" / ("secret.key" if target == "file" else "")
    path.chmod(mode)
    with pytest.raises(SecretKeyError, match=rf"others may read or write the key {target} .*: chmod"):
        encryption.key_file(tmp_path)


def test_a_planted_symbolic_link_is_refused(tmp_path: Path):
    (tmp_path / "secrets").mkdir(mode=0o700)
    planted = tmp_path / "elsewhere.key"
    planted.write_bytes(Fernet.generate_key())
    (tmp_path / "secrets" / "secret.key").symlink_to(planted)
    with pytest.raises(SecretKeyError, match="symbolic link"):
        encryption.key_file(tmp_path)


def test_rotation_reencrypts_every_stored_secret_with_the_new_key(fresh_redis: Redis, tmp_path: Path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = Settings(secret_keys=old, stack_dir=tmp_path, webhook_allow_networks=["127.0.0.0/8"])
    spec = subscriptions.SubscriptionSpec(url="http://127.0.0.1:9/hook", events=["anomaly.detected"])
    created, secret = subscriptions.create(fresh_redis, before, spec)

    during = before.model_copy(update={"secret_keys": Settings(secret_keys=f"{new},{old}").secret_keys})
    assert subscriptions.reencrypt_all(fresh_redis, during) == 1
    after = before.model_copy(update={"secret_keys": Settings(secret_keys=new).secret_keys})
    stored = subscriptions.load(fresh_redis, created.id)
    assert subscriptions.signing_secrets(after, stored, stored.created_at) == [secret]  # the old key is not needed
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        subscriptions.signing_secrets(before, stored, stored.created_at)
