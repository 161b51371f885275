"""Controls against the real Redis of the local stack: overrides and mutes as workers read them."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from pipeline import controls
from pipeline.settings import Settings


@pytest.fixture
def redis(fresh_redis: Redis) -> Redis:
    return fresh_redis


def test_defaults_then_a_per_symbol_override(redis: Redis):
    settings = Settings(drop_pct=5, window_seconds=300)
    controls.set_rule(redis, "tsla", "drop", threshold_pct=3, window_seconds=600)
    got = controls.controls_for(redis, settings, ["TSLA", "AAPL"])
    assert [(r.name, r.threshold_pct, r.window_seconds) for r in got["TSLA"].rules] == [
        ("drop", 3.0, 600), ("rise", 5.0, 300)]
    assert [(r.name, r.threshold_pct) for r in got["AAPL"].rules] == [("drop", 5.0), ("rise", 5.0)]
    controls.set_rule(redis, "TSLA", "drop", threshold_pct=4)  # merges with the window set before
    assert controls.controls_for(redis, settings, ["TSLA"])["TSLA"].rules[0].window_seconds == 600
    controls.clear_rule(redis, "TSLA", "drop")
    assert controls.controls_for(redis, settings, ["TSLA"])["TSLA"].rules[0].threshold_pct == 5.0


def test_mutes_with_and_without_expiry(redis: Redis):
    settings = Settings()
    controls.mute(redis, "BTC-USD", by="U123")
    controls.mute(redis, "ETH-USD", seconds=1)
    got = controls.controls_for(redis, settings, ["BTC-USD", "ETH-USD", "SOL-USD"])
    assert (got["BTC-USD"].muted, got["ETH-USD"].muted, got["SOL-USD"].muted) == (True, True, False)
    time.sleep(1.1)
    assert controls.controls_for(redis, settings, ["ETH-USD"])["ETH-USD"].muted is False
    controls.unmute(redis, "btc-usd")
    assert controls.controls_for(redis, settings, ["BTC-USD"])["BTC-USD"].muted is False


def test_bad_overrides_are_refused(redis: Redis):
    with pytest.raises(ValueError, match="unknown rule"):
        controls.set_rule(redis, "TSLA", "drop", threshold=3)
    with pytest.raises(ValueError, match="threshold_pct must be >= 0"):
        controls.set_rule(redis, "TSLA", "drop", threshold_pct=-1)
    with pytest.raises(ValueError, match="symbol"):
        controls.mute(redis, "not a symbol!")
