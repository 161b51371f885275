"""Groups, group thresholds and mutes, every kind of mute and recurring windows through the API: the same
service as Slack and the CLI, so these check the HTTP surface (status codes, fields named, audit) and careless
or hostile input."""

from __future__ import annotations

from fastapi.testclient import TestClient
from redis import Redis

from pipeline import controls
from pipeline.settings import Settings
from tests.api.conftest import ADMIN, READER, bearer, problem


def test_groups_are_made_listed_and_deleted_and_their_rules_apply_to_members(client: TestClient, settings: Settings):
    made = client.put("/v1/groups/tech", json={"members": ["aapl", "MSFT*"]}, headers=bearer(ADMIN))
    assert made.status_code == 200 and made.json()["members"] == ["AAPL", "MSFT*"]
    assert [g["name"] for g in client.get("/v1/groups", headers=bearer(READER)).json()["items"]] == ["tech"]
    group_rule = client.put("/v1/thresholds/group:tech", json={"rule": "drop", "threshold": 9}, headers=bearer(ADMIN))
    assert group_rule.status_code == 200, group_rule.text
    shown = client.get("/v1/thresholds/MSFT", headers=bearer(READER)).json()["rules"]["drop"]
    assert (shown["threshold"], shown["source"], shown["overridden"]) == (9.0, "group:tech", False)
    redis = Redis.from_url(settings.redis_url)
    assert controls.controls_for(redis, settings, ["AAPL"])["AAPL"].rules[0].threshold_pct == 9.0
    replaced = client.put("/v1/groups/tech", json={"members": ["MSFT"]}, headers=bearer(ADMIN)).json()
    assert replaced["members"] == ["MSFT"]
    assert client.get("/v1/thresholds/AAPL", headers=bearer(READER)).json()["rules"]["drop"]["source"] == "default"
    assert client.delete("/v1/groups/tech", headers=bearer(ADMIN)).status_code == 204
    assert problem(client.get("/v1/groups/tech", headers=bearer(READER)), 404)
    actions = [c["action"] for c in client.get("/v1/audit?symbol=group:tech", headers=bearer(READER)).json()["items"]]
    assert actions == ["group_delete", "group_change", "set_rule", "group_add"]


def test_careless_and_hostile_group_input_gets_a_4xx_naming_the_field(client: TestClient):
    assert problem(client.put("/v1/groups/Tech!", json={"members": ["AAPL"]}, headers=bearer(ADMIN)), 422)
    assert problem(client.put("/v1/groups/tech", json={"members": []}, headers=bearer(ADMIN)), 422)
    bad = problem(client.put("/v1/groups/tech", json={"members": ["<!channel>"]}, headers=bearer(ADMIN)), 422)
    assert "members" in str(bad)
    assert problem(client.put("/v1/groups/tech", json={"members": ["AAPL"]}, headers=bearer(READER)), 403)
    unknown = problem(client.post("/v1/mutes", json={"symbol": "group:nope"}, headers=bearer(ADMIN)), 404)
    assert "no group" in unknown["detail"]


def test_mute_kinds_through_the_api(client: TestClient):
    priced = client.post("/v1/mutes", json={"symbol": "AAPL", "below": 1, "unless": 2}, headers=bearer(ADMIN))
    assert priced.status_code == 201, priced.text
    body = priced.json()
    assert (body["until"], body["below"], body["unless"], body["says"]) == (None, 1.0, 2.0, "until below 1 unless 2x")
    no_episode = problem(
        client.post("/v1/mutes", json={"symbol": "MSFT", "until_resolved": True}, headers=bearer(ADMIN)), 422
    )
    assert "no open episode" in no_episode["detail"]
    both = problem(
        client.post("/v1/mutes", json={"symbol": "MSFT", "above": 1e9, "duration": "2h"}, headers=bearer(ADMIN)), 422
    )
    assert "one way" in both["detail"]
    assert problem(client.post("/v1/mutes", json={"symbol": "MSFT", "unless": 0.5}, headers=bearer(ADMIN)), 422)


def test_recurring_windows_are_made_listed_and_removed(client: TestClient):
    client.put("/v1/groups/crypto", json={"members": ["*-USD"]}, headers=bearer(ADMIN))
    spec = {"target": "group:crypto", "rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=0;BYMINUTE=0", "duration": "2h"}
    made = client.post("/v1/mutes/windows", json={**spec, "reason": "maintenance"}, headers=bearer(ADMIN))
    assert made.status_code == 201, made.text
    window = made.json()
    assert (window["target"], window["duration_seconds"], window["timezone"]) == ("group:crypto", 7200, "UTC")
    listed = client.get("/v1/mutes", headers=bearer(READER)).json()
    assert [w["id"] for w in listed["windows"]] == [window["id"]]
    for field, value in (("rrule", "FREQ=SECONDLY"), ("rrule", "DTSTART:2020;FREQ=DAILY"), ("duration", "9d")):
        refused = problem(client.post("/v1/mutes/windows", json={**spec, field: value}, headers=bearer(ADMIN)), 422)
        assert field in str(refused)
    assert problem(
        client.post("/v1/mutes/windows", json={**spec, "timezone": "Mars/Olympus"}, headers=bearer(ADMIN)), 422
    )
    assert client.delete(f"/v1/mutes/windows/{window['id']}", headers=bearer(ADMIN)).status_code == 204
    assert problem(client.delete(f"/v1/mutes/windows/{window['id']}", headers=bearer(ADMIN)), 404)
    assert client.get("/v1/mutes", headers=bearer(READER)).json()["windows"] == []
