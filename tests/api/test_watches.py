"""Personal watches through the API for a user id: the same service as /watch in Slack, so these check the HTTP
surface (status codes, fields named, who may) and careless or hostile input."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN, READER, bearer, problem

USER = "U0123ABCD"


def test_a_persons_watches_and_quiet_hours_are_set_listed_and_removed(client: TestClient):
    made = client.put(
        f"/v1/users/{USER}/watches",
        json={"target": "tsla", "rule": "drop", "threshold_pct": 3, "window_seconds": 600},
        headers=bearer(ADMIN),
    )
    assert made.status_code == 200, made.text
    assert made.json()["says"] == "TSLA drop 3% in 10m" and made.json()["user"] == USER
    client.put(
        f"/v1/users/{USER}/watches",
        json={"target": "group:semis", "rule": "zscore", "threshold_pct": 5},
        headers=bearer(ADMIN),
    )
    quiet = client.put(f"/v1/users/{USER}/quiet-hours", json={"quiet_hours": "22:00-07:00"}, headers=bearer(ADMIN))
    listed = quiet.json()
    assert [w["says"] for w in listed["items"]] == ["TSLA drop 3% in 10m", "group:semis zscore 5 sigma in 5m"]
    assert listed["quiet_hours"] == "22:00-07:00" and listed["limit"] == 50
    assert client.get("/v1/users/U0OTHER01/watches", headers=bearer(ADMIN)).json()["items"] == []
    gone = client.delete(f"/v1/users/{USER}/watches", params={"target": "TSLA", "rule": "drop"}, headers=bearer(ADMIN))
    assert gone.status_code == 204
    assert problem(client.delete(f"/v1/users/{USER}/watches", params={"target": "TSLA"}, headers=bearer(ADMIN)), 404)
    off = client.put(f"/v1/users/{USER}/quiet-hours", json={"quiet_hours": None}, headers=bearer(ADMIN)).json()
    assert off["quiet_hours"] is None and len(off["items"]) == 1


def test_careless_and_hostile_watch_input_gets_a_4xx_naming_the_field(client: TestClient):
    def put(body: dict, user: str = USER, token: str = ADMIN):
        return client.put(f"/v1/users/{user}/watches", json=body, headers=bearer(token))

    good = {"target": "TSLA", "rule": "drop", "threshold_pct": 3}
    assert problem(put(good, token=READER), 403)  # a person's watches are not any reader's
    assert problem(client.get(f"/v1/users/{USER}/watches", headers=bearer(READER)), 403)
    assert problem(put(good, user="alice"), 422)  # not a Slack user id
    assert problem(put({**good, "target": "<!channel>"}), 422)
    assert problem(put({**good, "threshold_pct": 0}), 422)
    assert problem(put({**good, "rule": "sideways"}), 422)
    assert problem(put({**good, "window_seconds": 5}), 422)
    assert "zscore" in str(problem(put({**good, "rule": "zscore", "threshold_pct": 500}), 422))
    assert problem(put({**good, "extra": 1}), 422)
    bad = problem(
        client.put(f"/v1/users/{USER}/quiet-hours", json={"quiet_hours": "25:00-07:00"}, headers=bearer(ADMIN)), 422
    )
    assert "quiet_hours" in str(bad)
    assert client.get(f"/v1/users/{USER}/watches", headers=bearer(ADMIN)).json()["items"] == []
