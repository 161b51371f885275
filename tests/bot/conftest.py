"""One bot server per test module of tests/slack_bot: the real HTTP app over the real Redis and Elasticsearch,
its Web API calls answered by the fake Slack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from redis import Redis
from slack_sdk import WebClient

from pipeline import store
from pipeline.alerting.anomalies import alert_context, record_slack_ref
from pipeline.alerting.messages import alert_message
from pipeline.keys import GROUPS, MUTE_WINDOWS, MUTES, RULES
from pipeline.schema import SlackRef, StoredTick
from pipeline.settings import Settings
from stack.fake_slack import FakeSlack
from tests.bot.harness import SECRET, BotServer, serve
from tests.bot.world import ADMIN, CHANNEL, DIPS, END, START, STEP, anomaly, tick, tsla_price, volm_volume
from tests.conftest import lease_database, redis_url_for, release_database


@pytest.fixture(scope="module")
def bot(real_stack: Settings) -> Iterator[BotServer]:
    """The stored world of world.py and a bot serving it, per test module (buttons change what they click on)."""
    db = lease_database(real_stack)
    prefix = f"tw-bot-{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=redis_url_for(real_stack, db), index_prefix=prefix, es_url=real_stack.es_url)
    es, indices = store.connect(settings), store.Indices(prefix)
    Redis.from_url(settings.redis_url).flushdb()
    store.ensure_templates(es, indices)
    count = int((END - START) / STEP) + 1
    ticks = [tick("TSLA", START + i * STEP, tsla_price(START + i * STEP), i) for i in range(count)]
    ticks += [tick("AAPL", START + i * STEP, 200.0 + i % 3, i) for i in range(count)]
    ticks += [
        {**tick("VOLM", START + i * STEP, 50.0 + i % 2 / 100, i), "volume": volm_volume(START + i * STEP)}
        for i in range(count)
    ]
    ticks += [tick("EUR/USD", START + i * STEP, 1.08, i) for i in range(count)]
    ticks.append({**tick("VOLM", START + timedelta(minutes=40, seconds=5), 5.0, count), "suspect_reason": "bad print"})
    store.write(es, [store.tick_action(indices, StoredTick(**t)) for t in ticks])
    with FakeSlack() as slack:
        settings = settings.model_copy(
            update={
                "slack_api_url": slack.url,
                "slack_bot_token": "xoxb-test",
                "slack_signing_secret": SECRET,
                "slack_admin_users": [ADMIN],
            }
        )
        web = WebClient(token="xoxb-test", base_url=slack.url)
        for minute, low in DIPS.items():
            stored = anomaly("TSLA", minute, low)
            store.write(es, [store.anomaly_action(indices, stored)])
            es.indices.refresh(index=f"{prefix}-*")
            text, blocks = alert_message(stored, alert_context(es, indices, stored))
            posted = web.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks)
            record_slack_ref(es, indices, stored, SlackRef(channel=posted["channel"], ts=posted["ts"]))
        es.indices.refresh(index=indices.anomalies)
        with serve(settings, slack) as server:
            yield server
    for index in es.indices.get(index=f"{prefix}-*"):
        es.indices.delete(index=index)
    Redis.from_url(settings.redis_url).flushdb()
    release_database(real_stack, db)


@pytest.fixture
def backend(bot: BotServer) -> Iterator[Any]:
    """Per test: a clean slate of calls, mutes and rules (the stored history is shared)."""
    from bot.backend import Backend

    made = Backend(bot.settings)
    bot.slack.clear_calls()
    made.redis.delete(MUTES, RULES, GROUPS, MUTE_WINDOWS)
    yield made
    made.redis.delete(MUTES, RULES, GROUPS, MUTE_WINDOWS)
