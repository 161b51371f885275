"""Settings as people set them: blanks are unset, lists may be comma-separated, secrets never shown."""

from __future__ import annotations

import pytest

from pipeline.alerting.channels import channel_names
from pipeline.settings import Settings


def test_a_blank_optional_setting_is_unset(monkeypatch: pytest.MonkeyPatch):
    for name in ("TICKWATCH_SECRET_KEY", "TICKWATCH_SECRET_KEYS", "SLACK_BOT_TOKEN", "TICKWATCH_SLACK_WORKSPACE_URL"):
        monkeypatch.setenv(name, "")  # what Compose's ${VAR:-} gives
    settings = Settings()
    assert settings.secret_keys_in_use == [] and settings.slack_bot_token is None
    assert settings.slack_workspace_url is None and channel_names(settings) == ["kafka", "log"]


@pytest.mark.parametrize("typed", ["U1,U2", " U1 , U2 ", '["U1", "U2"]'])
def test_list_settings_take_a_comma_separated_list_or_json(monkeypatch: pytest.MonkeyPatch, typed: str):
    monkeypatch.setenv("TICKWATCH_SLACK_ADMIN_USERS", typed)
    assert Settings().slack_admin_users == ["U1", "U2"]


@pytest.mark.parametrize("typed", ["127.0.0.0/8,10.0.0.0/8", '["127.0.0.0/8", "10.0.0.0/8"]'])
def test_networks_and_schedules_take_a_comma_separated_list_too(monkeypatch: pytest.MonkeyPatch, typed: str):
    monkeypatch.setenv("TICKWATCH_WEBHOOK_ALLOW_NETWORKS", typed)
    monkeypatch.setenv("TICKWATCH_WEBHOOK_RETRY_SCHEDULE", "0, 5, 300")
    settings = Settings()
    assert [str(network) for network in settings.webhook_allow_networks] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert settings.webhook_retry_schedule == [0, 5, 300]


def test_secrets_are_never_in_a_repr(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-very-secret")
    monkeypatch.setenv("TICKWATCH_API_TOKENS", '[{"name": "ops", "token": "api-token-very-secret"}]')
    shown = repr(Settings()) + str(Settings().model_dump())
    assert "very-secret" not in shown
