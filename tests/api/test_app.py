"""The HTTP API over the real Elasticsearch and Redis: every endpoint's happy path and its errors, auth, and
controls changed through the API landing in Redis (what workers read) and in the audit index.

The data is a small seeded history (tickwatch.seed) in a private index prefix, made once for this module.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from api.app import create_app
from pipeline import controls, history, keys, store, tokens
from pipeline.audit import Change
from pipeline.calendars import Calendars
from pipeline.schema import StoredTick, iso, to_ms
from pipeline.settings import Settings
from tests.api.conftest import ADMIN, READER, SPEC, WORKSPACE, bearer, problem
from tests.conftest import redis_url_for
from tickwatch.bench.seed import DAY, discard

# --- auth -------------------------------------------------------------------------------------------


def test_health_is_open_and_everything_else_needs_a_token(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": None, "delivery": None}
    assert client.get("/readyz", headers=bearer(READER)).json()["checks"] is None  # details: admins only
    detailed = client.get("/readyz", headers=bearer(ADMIN)).json()
    assert detailed["checks"] == {"kafka": "ok", "redis": "ok", "elasticsearch": "ok"}
    assert detailed["delivery"] == {"slack_problems": {}, "slack_circuit": "closed", "open_webhook_circuits": []}
    assert client.get("/metrics").status_code == 200
    for path in ("/v1/symbols", "/v1/anomalies", "/v1/mutes", "/v1/audit", "/v1/prices/AAPL"):
        missing = client.get(path)
        assert problem(missing, 401)["instance"] == path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert problem(client.get(path, headers=bearer("wrong-token-0123456789")), 401)
        assert client.get(path, headers=bearer(READER)).status_code == 200


def test_a_read_token_cannot_change_controls(client: TestClient):
    body = problem(
        client.put("/v1/thresholds/AAPL", json={"rule": "drop", "threshold": 3}, headers=bearer(READER)), 403
    )
    assert "admin" in body["detail"]
    assert problem(client.post("/v1/mutes", json={"symbol": "AAPL"}, headers=bearer(READER)), 403)
    assert problem(client.delete("/v1/mutes/AAPL", headers=bearer(READER)), 403)


def test_created_tokens_work_until_revoked(client: TestClient, settings: Settings, fresh_redis: Redis):
    token = tokens.create(fresh_redis, settings, "ci", "admin")
    assert token.encode() not in b"".join(fresh_redis.hvals(keys.API_TOKENS))  # only the hash is stored
    assert client.get("/v1/mutes", headers=bearer(token)).status_code == 200
    with pytest.raises(ValueError, match="exists"):
        tokens.create(fresh_redis, settings, "ci", "read")
    assert tokens.revoke(fresh_redis, "ci")
    assert problem(client.get("/v1/mutes", headers=bearer(token)), 401)


# --- prices -----------------------------------------------------------------------------------------


def test_symbols_with_their_last_price(client: TestClient, seeded: store.Indices):
    items = client.get("/v1/symbols", headers=bearer(READER)).json()["items"]
    assert [item["symbol"] for item in items] == ["AAPL", "MSFT", "TSLA"]
    last = DAY + timedelta(milliseconds=(SPEC.ticks_per_symbol - 1) * SPEC.interval_ms)
    assert all(item["last_timestamp"] == iso(last).replace(".000", "") for item in items)
    market = items[0]["market"]
    now = datetime.now(UTC)
    expected = Calendars({}).session_of("AAPL", now)  # the library's answer for New York, now
    assert market["calendar"] == "XNYS" and market["open"] is expected.open
    assert datetime.fromisoformat(market["until"]) == expected.until and market["status"] == expected.describe()


def test_prices_page_through_the_default_range_ending_at_the_last_tick(client: TestClient):
    first = client.get("/v1/prices/aapl?limit=200", headers=bearer(READER))
    assert first.status_code == 200
    page = first.json()
    # Default: the hour before the last tick; ticks every 4 s over 40 minutes -> every tick of the day.
    rows, pages = list(page["items"]), 1
    while page["next"]:
        page = client.get(page["next"], headers=bearer(READER)).json()
        rows += page["items"]
        pages += 1
    assert pages == 3 and len(rows) == SPEC.ticks_per_symbol
    times = [row["timestamp"] for row in rows]
    assert times == sorted(times) and len(set(times)) == len(times)
    # Only a start: the hour from there (all 40 minutes); only an end: the hour before it (one tick every 4 s).
    window = client.get(
        "/v1/prices/AAPL", params={"start": "2026-01-05T00:00:00Z", "limit": 1000}, headers=bearer(READER)
    ).json()
    assert window["end"] == "2026-01-05T01:00:00Z" and len(window["items"]) == SPEC.ticks_per_symbol
    before = client.get(
        "/v1/prices/AAPL", params={"end": "2026-01-05T00:15:00Z", "limit": 1000}, headers=bearer(READER)
    ).json()
    assert before["start"] == "2026-01-04T23:15:00Z" and len(before["items"]) == 226  # both ends inclusive


def test_prices_errors(client: TestClient):
    unknown = problem(client.get("/v1/prices/AAPX", headers=bearer(READER)), 404)
    assert "AAPL" in unknown["suggestions"] and "did you mean" in unknown["detail"]
    bad = problem(client.get("/v1/prices/no%20way", headers=bearer(READER)), 422)
    assert bad["errors"][0]["field"] == "path.symbol"
    backwards = problem(
        client.get(
            "/v1/prices/AAPL",
            headers=bearer(READER),
            params={"start": "2026-01-05T01:00:00Z", "end": "2026-01-05T00:00:00Z"},
        ),
        422,
    )
    assert backwards["errors"][0]["field"] == "query.end"
    assert problem(client.get("/v1/prices/AAPL?cursor=garbage", headers=bearer(READER)), 422)
    assert (
        problem(client.get("/v1/prices/AAPL?limit=0", headers=bearer(READER)), 422)["errors"][0]["field"]
        == "query.limit"
    )


def test_ohlc_bars_add_up_to_the_ticks(client: TestClient, settings: Settings):
    response = client.get("/v1/prices/MSFT/ohlc?interval=5m", headers=bearer(READER))
    assert response.status_code == 200
    bars = response.json()["bars"]
    assert sum(bar["ticks"] for bar in bars) == SPEC.ticks_per_symbol
    assert len(bars) == 8  # 40 minutes
    es, indices = store.connect(settings), store.Indices(settings.index_prefix)
    first_ticks = history.ticks_page(es, indices, "MSFT", DAY, DAY + timedelta(minutes=5), limit=75).items
    assert bars[0]["open"] == first_ticks[0].price and bars[0]["close"] == first_ticks[-1].price
    assert bars[0]["high"] == max(t.price for t in first_ticks) and bars[0]["low"] == min(t.price for t in first_ticks)


def test_ohlc_errors(client: TestClient):
    interval = problem(client.get("/v1/prices/MSFT/ohlc?interval=7m", headers=bearer(READER)), 422)
    assert interval["errors"][0]["field"] == "query.interval"
    too_many = problem(
        client.get(
            "/v1/prices/MSFT/ohlc",
            params={"interval": "1m", "start": "2026-01-01T00:00:00Z", "end": "2026-01-06T00:00:00Z"},
            headers=bearer(READER),
        ),
        422,
    )
    assert "at most" in too_many["detail"]
    assert problem(client.get("/v1/prices/MSFX/ohlc", headers=bearer(READER)), 404)["suggestions"] == ["MSFT"]


# --- anomalies --------------------------------------------------------------------------------------


def test_anomalies_newest_first_filtered_and_paged(client: TestClient):
    everything = client.get("/v1/anomalies?limit=100", headers=bearer(READER)).json()["items"]
    assert len(everything) == SPEC.anomalies
    times = [item["timestamp"] for item in everything]
    assert times == sorted(times, reverse=True)
    page = client.get("/v1/anomalies?limit=4", headers=bearer(READER)).json()
    second = client.get(page["next"], headers=bearer(READER)).json()
    assert [a["id"] for a in page["items"] + second["items"]] == [a["id"] for a in everything]
    tsla = client.get("/v1/anomalies?symbol=tsla", headers=bearer(READER)).json()["items"]
    assert {a["symbol"] for a in tsla} == {"TSLA"} and len(tsla) == SPEC.moves_per_symbol
    for status in ("open", "acknowledged", "resolved"):
        found = client.get(f"/v1/anomalies?status={status}", headers=bearer(READER)).json()["items"]
        assert [a["id"] for a in found] == [a["id"] for a in everything if a["status"] == status]
    muted = client.get("/v1/anomalies?muted=true", headers=bearer(READER)).json()["items"]
    assert [a["id"] for a in muted] == [a["id"] for a in everything if a["muted"]]
    assert (
        problem(client.get("/v1/anomalies?status=gone", headers=bearer(READER)), 422)["errors"][0]["field"]
        == "query.status"
    )


def test_one_anomaly_with_its_slack_link(client: TestClient):
    items = client.get("/v1/anomalies?limit=100", headers=bearer(READER)).json()["items"]
    posted = next(a for a in items if a["slack"])
    one = client.get(f"/v1/anomalies/{posted['id']}", headers=bearer(READER)).json()
    channel, ts = posted["slack"]["channel"], posted["slack"]["ts"]
    assert one["slack_url"] == f"{WORKSPACE}/archives/{channel}/p{ts.replace('.', '')}"
    assert one["status"] in ("open", "acknowledged", "resolved")
    body = problem(client.get("/v1/anomalies/nope", headers=bearer(READER)), 404)
    assert "nope" in body["detail"]


# --- controls ---------------------------------------------------------------------------------------


def _audit(settings: Settings) -> list[Change]:
    ctl = controls.Controls(
        Redis.from_url(settings.redis_url), settings, store.connect(settings), store.Indices(settings.index_prefix)
    )
    return ctl.audit_log(limit=10)


def test_thresholds_through_the_api_reach_the_workers_and_the_audit(client: TestClient, settings: Settings):
    redis = Redis.from_url(settings.redis_url)
    before = client.get("/v1/thresholds/NVDA", headers=bearer(READER))
    assert problem(before, 404)  # no ticks for NVDA in this history: a typo must not change nothing silently
    got = client.get("/v1/thresholds/AAPL", headers=bearer(READER)).json()
    assert got["rules"]["drop"] == {
        "threshold": 5.0,
        "window_seconds": 300,
        "cooldown_seconds": 300,
        "confirm_ticks": settings.confirm_ticks,
        "confirm_seconds": settings.confirm_seconds,
        "overridden": False,
        "source": "default",
        "summary": "drop 5% in 5m, re-arms after 5m, confirmed by 2 ticks",
    }
    put = client.put(
        "/v1/thresholds/aapl", json={"rule": "drop", "threshold": 3, "window": "10m"}, headers=bearer(ADMIN)
    )
    assert put.status_code == 200 and put.json()["rules"]["drop"]["threshold"] == 3.0
    rules = controls.controls_for(redis, settings, ["AAPL"])["AAPL"].rules
    assert (rules[0].name, rules[0].threshold_pct, rules[0].window_seconds) == ("drop", 3.0, 600)
    change = _audit(settings)[0]
    assert (change.action, change.symbol, change.actor.name, change.actor.via) == ("set_rule", "AAPL", "ops-bot", "api")
    assert change.old["threshold_pct"] == 5.0 and change.new["threshold_pct"] == 3.0

    listed = client.get("/v1/audit?symbol=AAPL", headers=bearer(READER)).json()["items"]
    assert listed[0]["action"] == "set_rule" and listed[0]["actor"] == {"name": "ops-bot", "via": "api", "id": None}

    reset = client.delete("/v1/thresholds/AAPL", headers=bearer(ADMIN)).json()
    assert reset["rules"]["drop"]["overridden"] is False
    assert controls.controls_for(redis, settings, ["AAPL"])["AAPL"].rules[0].threshold_pct == 5.0


def test_every_rule_and_the_confirmation_can_be_set_through_the_api(client: TestClient, settings: Settings):
    redis = Redis.from_url(settings.redis_url)
    for change in (
        {"rule": "zscore", "threshold": 4},
        {"rule": "volume", "threshold": 150, "window": "15"},
        {"rule": "drop", "confirm_ticks": 3, "confirm_for": "10s"},
    ):
        assert client.put("/v1/thresholds/AAPL", json=change, headers=bearer(ADMIN)).status_code == 200
    rules = {rule.name: rule for rule in controls.controls_for(redis, settings, ["AAPL"])["AAPL"].rules}
    assert rules["zscore"].threshold_pct == 4 and (rules["volume"].threshold_pct, rules["volume"].window_seconds) == (
        150,
        900,
    )  # a volume spike is a multiple, not a percentage: 150x is fine; a bare 15 is minutes, as in Slack
    assert (rules["drop"].confirm_ticks, rules["drop"].confirm_seconds, rules["drop"].threshold_pct) == (3, 10.0, 5.0)
    shown = client.get("/v1/thresholds/AAPL", headers=bearer(READER)).json()["rules"]
    assert (
        shown["volume"]["summary"].startswith("volume 150x in 15m, re-arms after 15m, confirmed by")
        and shown["drop"]["confirm_ticks"] == 3
    )


def test_threshold_errors_name_the_field(client: TestClient, settings: Settings):
    audited = _audit(settings)
    window = problem(
        client.put("/v1/thresholds/AAPL", json={"rule": "drop", "window": "soon"}, headers=bearer(ADMIN)), 422
    )
    assert window["errors"][0]["field"] == "body.window" and "15m" in window["detail"]
    negative = problem(
        client.put("/v1/thresholds/AAPL", json={"rule": "drop", "threshold": -1}, headers=bearer(ADMIN)), 422
    )
    assert negative["errors"][0]["field"] == "body.threshold"
    pct = problem(
        client.put("/v1/thresholds/AAPL", json={"rule": "drop", "threshold": 120}, headers=bearer(ADMIN)), 422
    )
    assert "percentage" in pct["detail"]  # the Controls service's own rule, as the bot says it
    rule = problem(client.put("/v1/thresholds/AAPL", json={"rule": "sideways"}, headers=bearer(ADMIN)), 422)
    assert rule["errors"][0]["field"] == "body.rule"
    cooldown = problem(
        client.put("/v1/thresholds/AAPL", json={"rule": "drop", "cooldown": "1m"}, headers=bearer(ADMIN)), 422
    )
    assert "cooldown" in cooldown["detail"] and cooldown["errors"][0]["field"] == "body.cooldown"
    sigmas = problem(
        client.put(
            "/v1/thresholds/AAPL", json={"rule": "zscore", "threshold": 60, "window": "10m"}, headers=bearer(ADMIN)
        ),
        422,
    )
    assert sigmas["errors"][0]["field"] == "body.threshold" and "sigma" in sigmas["detail"]
    confirm = problem(
        client.put(
            "/v1/thresholds/AAPL", json={"rule": "drop", "threshold": 3, "confirm_ticks": 500}, headers=bearer(ADMIN)
        ),
        422,
    )
    assert confirm["errors"][0]["field"] == "body.confirm_ticks"
    assert (
        problem(
            client.put("/v1/thresholds/AAPL", json={"rule": "drop", "confirm_for": "later"}, headers=bearer(ADMIN)), 422
        )["errors"][0]["field"]
        == "body.confirm_for"
    )
    nothing = problem(client.put("/v1/thresholds/AAPL", json={"rule": "drop"}, headers=bearer(ADMIN)), 422)
    assert nothing["errors"][0]["field"] == "body" and "at least one" in nothing["detail"]
    assert _audit(settings) == audited  # nothing refused was stored or audited


def test_mutes_through_the_api(client: TestClient, settings: Settings):
    redis = Redis.from_url(settings.redis_url)
    created = client.post(
        "/v1/mutes", json={"symbol": "tsla", "duration": "2h", "reason": "earnings"}, headers=bearer(ADMIN)
    )
    assert created.status_code == 201
    body = created.json()
    assert body["symbol"] == "TSLA" and body["by"] == "ops-bot" and body["reason"] == "earnings"
    assert controls.controls_for(redis, settings, ["TSLA"])["TSLA"].muted
    assert [m["symbol"] for m in client.get("/v1/mutes", headers=bearer(READER)).json()["items"]] == ["TSLA"]
    change = _audit(settings)[0]
    assert (change.action, change.actor.name, change.actor.via) == ("mute", "ops-bot", "api")

    assert client.delete("/v1/mutes/TSLA", headers=bearer(ADMIN)).status_code == 204
    assert not controls.controls_for(redis, settings, ["TSLA"])["TSLA"].muted
    assert problem(client.delete("/v1/mutes/TSLA", headers=bearer(ADMIN)), 404)
    assert _audit(settings)[0].action == "unmute"


def test_a_mute_given_no_length_lasts_an_hour_as_in_slack_and_forever_has_no_end(client: TestClient):
    default = client.post("/v1/mutes", json={"symbol": "TSLA"}, headers=bearer(ADMIN)).json()
    lasts = datetime.fromisoformat(default["until"]) - datetime.fromisoformat(default["at"])
    assert timedelta(minutes=59) < lasts <= timedelta(hours=1)
    endless = client.post("/v1/mutes", json={"symbol": "TSLA", "duration": "forever"}, headers=bearer(ADMIN)).json()
    assert endless["until"] is None
    client.delete("/v1/mutes/TSLA", headers=bearer(ADMIN))


def test_mute_errors(client: TestClient):
    duration = problem(
        client.post("/v1/mutes", json={"symbol": "AAPL", "duration": "eternity"}, headers=bearer(ADMIN)), 422
    )
    assert duration["errors"][0]["field"] == "body.duration"
    both = problem(
        client.post(
            "/v1/mutes",
            json={"symbol": "AAPL", "duration": "1h", "until": "2099-01-01T00:00:00Z"},
            headers=bearer(ADMIN),
        ),
        422,
    )
    assert "not both" in both["detail"] and both["errors"][0]["field"] == "body.until"
    past = problem(
        client.post("/v1/mutes", json={"symbol": "AAPL", "until": "2001-01-01T00:00:00Z"}, headers=bearer(ADMIN)), 422
    )
    assert past["errors"][0]["field"] == "body.until" and "future" in past["detail"]
    assert problem(client.post("/v1/mutes", json={"symbol": "APPL"}, headers=bearer(ADMIN)), 404)["suggestions"]
    assert problem(client.post("/v1/mutes", json={}, headers=bearer(ADMIN)), 422)["errors"][0]["field"] == "body.symbol"
    typo = problem(client.post("/v1/mutes", json={"symbol": "AAPL", "durration": "1h"}, headers=bearer(ADMIN)), 422)
    assert typo["errors"][0]["field"] == "body.durration"  # not a mute without end
    assert client.get("/v1/mutes", headers=bearer(READER)).json()["items"] == []


def test_openapi_and_docs(client: TestClient):
    schema = client.get("/openapi.json").json()
    paths = {"/v1/symbols", "/v1/prices/{symbol}/ohlc", "/v1/anomalies/{anomaly_id}", "/v1/mutes"}
    assert paths <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert {tag["name"] for tag in schema["tags"]} == {
        "prices",
        "anomalies",
        "controls",
        "watches",
        "webhooks",
        "health",
    }
    listed = schema["paths"]["/v1/anomalies"]["get"]
    assert all(parameter["description"] for parameter in listed["parameters"])
    assert {"401", "422", "503"} <= set(listed["responses"])
    sent = schema["webhooks"]["anomaly.detected"]["post"]  # what subscribers receive, documented too
    assert sent["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/AlertEvent")
    assert {p["name"] for p in sent["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert set(schema["webhooks"]) == {
        "anomaly.detected",
        "anomaly.resolved",
        "digest.daily",
        "feed.stale",
        "feed.recovered",
    }


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_server_itself(client: TestClient, page: str):
    """Offline (no CDN): each script, stylesheet and icon the page names is served here, and is the real thing."""
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets and all(url.startswith("/") for url in assets), assets  # nothing from another host
    for url in assets:
        served = client.get(url)
        assert served.status_code == 200 and len(served.content) > 1000, url
    assert "/openapi.json" in html


def test_unknown_routes_methods_and_bodies_are_problems_that_say_what_to_do(client: TestClient):
    route = problem(client.get("/v1/pricez", headers=bearer(READER)), 404)
    assert "GET /v1/pricez" in route["detail"] and "/docs" in route["detail"]
    method = problem(client.delete("/v1/symbols", headers=bearer(ADMIN)), 405)
    assert method["detail"] == "DELETE is not allowed on /v1/symbols; allowed: GET"
    body = problem(
        client.put(
            "/v1/thresholds/AAPL",
            content=b"{rule: drop}",
            headers={**bearer(ADMIN), "content-type": "application/json"},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "body" and "not valid JSON" in body["detail"]


def test_a_deployment_without_ticks_answers_empty(real_stack: Settings, fresh_redis: Redis):
    indices = store.Indices(f"tw-empty-{uuid.uuid4().hex[:8]}")
    es = store.connect(real_stack)
    store.ensure_templates(es, indices)
    try:
        db = fresh_redis.connection_pool.connection_kwargs["db"]
        empty = TestClient(
            create_app(
                Settings(
                    redis_url=redis_url_for(real_stack, db),
                    es_url=real_stack.es_url,
                    index_prefix=indices.prefix,
                    api_tokens=[{"name": "ci", "token": READER, "scope": "read"}],
                )
            ),
            raise_server_exceptions=False,
        )
        assert empty.get("/v1/symbols", headers=bearer(READER)).json() == {"items": []}
        assert problem(empty.get("/v1/prices/TSLA", headers=bearer(READER)), 404)["suggestions"] == []
        assert empty.get("/v1/anomalies", headers=bearer(READER)).json()["items"] == []
    finally:
        discard(es, indices)


def test_a_symbol_with_a_slash_is_reachable_written_as_it_is(real_stack: Settings, fresh_redis: Redis):
    indices = store.Indices(f"tw-pair-{uuid.uuid4().hex[:8]}")
    es = store.connect(real_stack)
    store.ensure_templates(es, indices)
    start = to_ms(DAY)
    store.write(
        es,
        [
            store.tick_action(
                indices,
                StoredTick(
                    **{
                        "symbol": "EUR/USD",
                        "ts": start + n * 60_000,
                        "price": 1.05 + n / 1000,
                        "volume": None,
                        "late": False,
                        "partition": 0,
                        "offset": n,
                        "published": None,
                    }
                ),
            )
            for n in range(5)
        ],
    )
    es.indices.refresh(index=f"{indices.prefix}-*")
    try:
        db = fresh_redis.connection_pool.connection_kwargs["db"]
        pair = TestClient(
            create_app(
                Settings(
                    redis_url=redis_url_for(real_stack, db),
                    es_url=real_stack.es_url,
                    index_prefix=indices.prefix,
                    api_tokens=[{"name": "ops", "token": ADMIN, "scope": "admin"}],
                )
            )
        )
        ticks = pair.get("/v1/prices/eur/usd", headers=bearer(ADMIN)).json()
        assert ticks["symbol"] == "EUR/USD" and len(ticks["items"]) == 5
        bars = pair.get("/v1/prices/EUR%2FUSD/ohlc?interval=1h", headers=bearer(ADMIN)).json()
        assert bars["symbol"] == "EUR/USD" and bars["bars"][0]["ticks"] == 5
        assert pair.get("/v1/thresholds/EUR/USD", headers=bearer(ADMIN)).json()["symbol"] == "EUR/USD"
        assert pair.post("/v1/mutes", json={"symbol": "EUR/USD"}, headers=bearer(ADMIN)).status_code == 201
        assert pair.delete("/v1/mutes/EUR/USD", headers=bearer(ADMIN)).status_code == 204
    finally:
        discard(es, indices)


def test_a_request_is_authenticated_before_its_body_is_read_or_parsed(client: TestClient):
    broken = client.post("/v1/webhooks", content=b"{not json", headers={"content-type": "application/json"})
    assert problem(broken, 401)["detail"].startswith("send an API token")
    huge = b'{"url": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert problem(client.post("/v1/webhooks", content=huge), 413)  # its declared length: refused unread
    assert problem(client.post("/v1/webhooks", content=huge, headers=bearer(ADMIN)), 413)
    chunks = iter([b'{"url": "', b"x" * 700_000, b"x" * 700_000, b'"}'])
    assert client.post("/v1/webhooks", content=chunks, headers=bearer(ADMIN)).status_code == 413


def test_absurd_durations_are_a_422_not_a_500(client: TestClient):
    refused = client.post("/v1/mutes", json={"symbol": "AAPL", "duration": "99999999999d"}, headers=bearer(ADMIN))
    assert problem(refused, 422)


def test_a_token_over_its_rate_gets_429_with_retry_after(settings: Settings):
    limited = TestClient(create_app(settings.model_copy(update={"api_rate_limit": "3/minute"})))
    answers = [limited.get("/v1/symbols", headers=bearer(READER)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert problem(answers[-1], 429)["detail"].startswith("token 'grafana' made more than 3/minute")
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert limited.get("/v1/symbols", headers=bearer(ADMIN)).status_code == 200  # per token, not per app
