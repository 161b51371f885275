"""The /v1/webhooks endpoints over the real Redis, and the SSRF matrix: every unsafe URL is refused with a
clear 422 at creation or a failed attempt at delivery — never a request sent. The only traffic in these
tests goes to local receivers on loopback; refused addresses are refused before connecting.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient
from redis import Redis
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from pipeline.settings import ApiToken, Settings
from pipeline.webhooks import delivery_log, subscriptions
from pipeline.webhooks.delivery import run
from stack.webhook_receiver import Reply, WebhookReceiver
from tests.conftest import redis_url_for

ADMIN = {"Authorization": "Bearer admin-token-for-webhook-tests"}
READER = {"Authorization": "Bearer read-token-for-webhook-tests"}
EVENTS = ["anomaly.detected", "anomaly.resolved"]


@pytest.fixture
def settings(real_stack: Settings, fresh_redis: Redis) -> Settings:
    """An API on a leased Redis database, loopback allow-listed (the receivers are local)."""
    db = fresh_redis.connection_pool.connection_kwargs["db"]
    return real_stack.model_copy(
        update={
            "redis_url": redis_url_for(real_stack, db),
            "api_tokens": [
                ApiToken(name="ops", token=ADMIN["Authorization"][7:], scope="admin"),
                ApiToken(name="viewer", token=READER["Authorization"][7:], scope="read"),
            ],
            "webhook_allow_networks": [ip_network("127.0.0.0/8")],
            "webhook_retry_schedule": [0.0, 0.1],
            "webhook_timeout_seconds": 2.0,
        }
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def strict_api(settings: Settings) -> Iterator[TestClient]:
    """The same API with the default (empty) allow-list."""
    with TestClient(create_app(settings.model_copy(update={"webhook_allow_networks": []}))) as client:
        yield client


def test_webhooks_need_an_admin_token(api: TestClient):
    assert api.get("/v1/webhooks").status_code == 401
    assert api.get("/v1/webhooks", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    refused = api.post("/v1/webhooks", headers=READER, json={"url": "http://127.0.0.1:9/h", "events": EVENTS})
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/webhooks", headers=READER).status_code == 403


def test_a_subscription_from_creation_to_deletion(api: TestClient, settings: Settings, fresh_redis: Redis):
    with WebhookReceiver() as hooks:
        created = api.post(
            "/v1/webhooks",
            headers=ADMIN,
            json={"url": hooks.url, "events": EVENTS, "symbols": ["tsla"], "description": "risk desk"},
        )
        assert created.status_code == 201
        body = created.json()
        sub, secret = body["id"], body["secret"]
        assert secret.startswith("whsec_") and body["symbols"] == ["TSLA"] and body["enabled"] is True
        shown = api.get(f"/v1/webhooks/{sub}", headers=ADMIN).json()
        assert "secret" not in shown and "secrets" not in shown and shown["description"] == "risk desk"
        assert [w["id"] for w in api.get("/v1/webhooks", headers=ADMIN).json()["items"]] == [sub]

        test = api.post(f"/v1/webhooks/{sub}/test", headers=ADMIN)
        assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
        assert run(fresh_redis, settings, (test.json()["id"], 0)) == "succeeded"
        headers, payload = hooks.received[0]
        assert Webhook(secret).verify(payload, headers)["type"] == "webhook.test"

        log = api.get(f"/v1/webhooks/{sub}/deliveries", headers=ADMIN).json()
        assert [(d["status"], d["attempts"], d["response_code"]) for d in log["items"]] == [("succeeded", 1, 204)]
        assert log["items"][0]["latency_ms"] >= 0 and log["next_cursor"] is None

        replay = api.post(f"/v1/webhooks/{sub}/deliveries/{test.json()['id']}/replay", headers=ADMIN)
        assert replay.status_code == 202 and replay.json()["status"] == "pending"
        assert api.post(f"/v1/webhooks/{sub}/deliveries/{test.json()['id']}/replay", headers=ADMIN).status_code == 409
        assert run(fresh_redis, settings, (test.json()["id"], 1)) == "succeeded"
        assert hooks.received[1][0]["webhook-id"] == headers["webhook-id"]

        rotated = api.post(f"/v1/webhooks/{sub}/rotate-secret", headers=ADMIN).json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

        paused = api.patch(f"/v1/webhooks/{sub}", headers=ADMIN, json={"enabled": False}).json()
        assert paused["enabled"] is False and paused["disabled_reason"] == "disabled through the API"
        assert api.post(f"/v1/webhooks/{sub}/test", headers=ADMIN).status_code == 409
        resumed = api.patch(f"/v1/webhooks/{sub}", headers=ADMIN, json={"enabled": True, "symbols": None}).json()
        assert resumed["enabled"] is True and resumed["disabled_reason"] is None and resumed["symbols"] is None

        recovered = api.post(f"/v1/webhooks/{sub}/recover", headers=ADMIN, params={"since": "2026-01-01T00:00:00Z"})
        assert recovered.status_code == 202 and recovered.json() == {"resent": 0}  # nothing failed

        assert api.delete(f"/v1/webhooks/{sub}", headers=ADMIN).status_code == 204
        assert api.get(f"/v1/webhooks/{sub}", headers=ADMIN).status_code == 404
        assert api.delete(f"/v1/webhooks/{sub}", headers=ADMIN).status_code == 404


def test_bad_input_is_a_problem_naming_the_field(api: TestClient):
    empty = api.post("/v1/webhooks", headers=ADMIN, json={"url": "https://example.com/h", "events": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "body.events"
    unknown = api.post("/v1/webhooks", headers=ADMIN, json={"url": "https://example.com/h", "events": ["price.tick"]})
    assert unknown.status_code == 422 and "body.events" in unknown.json()["detail"]
    symbol = api.post(
        "/v1/webhooks", headers=ADMIN, json={"url": "https://example.com/h", "events": EVENTS, "symbols": ["no spaces"]}
    )
    assert symbol.status_code == 422 and "symbol must be" in symbol.json()["detail"]
    scheme = api.post("/v1/webhooks", headers=ADMIN, json={"url": "file:///etc/passwd", "events": EVENTS})
    assert scheme.status_code == 422 and "only http and https" in scheme.json()["detail"]
    assert api.get("/v1/webhooks/sub_nope/deliveries", headers=ADMIN).status_code == 404
    assert api.post("/v1/webhooks/sub_nope/rotate-secret", headers=ADMIN).status_code == 404
    created = api.post("/v1/webhooks", headers=ADMIN, json={"url": "http://127.0.0.1:9/h", "events": EVENTS}).json()
    cursor = api.get(f"/v1/webhooks/{created['id']}/deliveries", headers=ADMIN, params={"cursor": "x"})
    assert cursor.status_code == 422 and cursor.json()["errors"][0]["field"] == "query.cursor"
    since = api.post(f"/v1/webhooks/{created['id']}/recover", headers=ADMIN, params={"since": "yesterday"})
    assert since.status_code == 422 and since.json()["errors"][0]["field"] == "query.since"
    path = f"/v1/webhooks/{created['id']}"
    null = api.patch(path, headers=ADMIN, json={"url": None})
    assert null.status_code == 422 and null.json()["errors"][0]["field"] == "body.url"
    typo = api.patch(path, headers=ADMIN, json={"enable": False})  # misspelt: must not answer 200 and change nothing
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "body.enable"
    assert api.get(path, headers=ADMIN).json()["enabled"] is True
    assert api.patch(path, headers=ADMIN, json={"symbols": None}).json()["symbols"] is None  # null: all symbols


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is loopback"),
        ("10.0.0.1", "10.0.0.1 is private (RFC 1918)"),
        ("169.254.169.254", "169.254.169.254 is link-local (cloud metadata service)"),
        ("[::1]", "::1 is loopback"),
        ("[fd00::1]", "fd00::1 is unique local (IPv6 ULA)"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is loopback, as IPv4 127.0.0.1 inside IPv6"),
        ("localhost", "localhost resolves to"),
    ],
)
def test_ssrf_matrix_unsafe_urls_are_refused_at_creation(strict_api: TestClient, host: str, reason: str):
    with WebhookReceiver() as bait:  # listening on 127.0.0.1: it must hear nothing
        url = f"http://{host}:{bait.server.server_port}/hook"
        refused = strict_api.post("/v1/webhooks", headers=ADMIN, json={"url": url, "events": EVENTS})
        assert refused.status_code == 422
        problem = refused.json()
        assert problem["type"].endswith("/unsafe-url") and problem["errors"][0]["field"] == "body.url"
        assert reason in problem["detail"] and "TICKWATCH_WEBHOOK_ALLOW_NETWORKS" in problem["detail"]
        assert strict_api.get("/v1/webhooks", headers=ADMIN).json()["items"] == []
    assert bait.received == []


def test_ssrf_matrix_an_address_no_longer_allowed_is_a_failed_attempt_without_a_request(
    api: TestClient, settings: Settings, fresh_redis: Redis
):
    with WebhookReceiver() as bait:
        sub = api.post("/v1/webhooks", headers=ADMIN, json={"url": bait.url, "events": EVENTS}).json()["id"]
        subscriptions.dispatch(
            fresh_redis,
            settings,
            {"type": "anomaly.detected", "id": "msg_a", "timestamp": "x", "data": {"symbol": "TSLA"}},
        )
        strict = settings.model_copy(update={"webhook_allow_networks": []})  # e.g. the allow-list was narrowed
        assert run(fresh_redis, strict, (delivery_log.delivery_id(sub, "msg_a"), 0)) == "retrying"
        attempt = subscriptions.deliveries(fresh_redis, sub)[0][0].history[0]
        assert attempt.response_code is None and attempt.error.startswith("not sent: 127.0.0.1 is loopback")
    assert bait.received == []


def test_ssrf_matrix_a_redirect_to_loopback_is_not_followed(api: TestClient, settings: Settings, fresh_redis: Redis):
    # The allow-listed endpoint answers with a redirect to another local receiver: a failed attempt.
    with WebhookReceiver() as inner, WebhookReceiver(Reply(302, {"location": inner.url})) as outer:
        sub = api.post("/v1/webhooks", headers=ADMIN, json={"url": outer.url, "events": EVENTS}).json()["id"]
        subscriptions.dispatch(
            fresh_redis,
            settings,
            {"type": "anomaly.detected", "id": "msg_r", "timestamp": "x", "data": {"symbol": "TSLA"}},
        )
        assert run(fresh_redis, settings, (delivery_log.delivery_id(sub, "msg_r"), 0)) == "retrying"
        delivery = subscriptions.deliveries(fresh_redis, sub)[0][0]
        assert delivery.response_code == 302 and "redirects are not followed" in delivery.error
        assert len(outer.received) == 1
    assert inner.received == []


def test_the_delivery_log_pages_newest_first_and_filters_by_status(
    api: TestClient, settings: Settings, fresh_redis: Redis
):
    sub = api.post("/v1/webhooks", headers=ADMIN, json={"url": "http://127.0.0.1:9/h", "events": EVENTS}).json()["id"]
    for n in range(5):
        subscriptions.dispatch(
            fresh_redis,
            settings,
            {"type": "anomaly.detected", "id": f"msg_{n}", "timestamp": "x", "data": {"symbol": "TSLA"}},
        )
    seen, path, params = [], f"/v1/webhooks/{sub}/deliveries", {"limit": 2}
    while True:
        page = api.get(path, headers=ADMIN, params=params).json()
        seen += [d["event_id"] for d in page["items"]]
        if page["next_cursor"] is None:
            break
        assert page["next"].startswith(path) and "cursor=" in page["next"]
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == [f"msg_{n}" for n in reversed(range(5))]
    assert len(api.get(path, headers=ADMIN, params={"status": "pending"}).json()["items"]) == 5
    for forged in ("nan", "1767639244.5", "WyJ4Il0"):  # NaN, a bare score, ["x"] encoded
        refused = api.get(path, headers=ADMIN, params={"cursor": forged})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "query.cursor"
    assert api.get(path, headers=ADMIN, params={"status": "failed"}).json()["items"] == []
