"""schemathesis against the app's own OpenAPI document: generated requests (valid and invalid) to every
operation, over the real Elasticsearch and Redis with a small seeded history; no 5xx, and every response
matches its documented status, content type and schema. Requests that break the schema get no 5xx either.

Bounded: a few examples per operation, so the whole run stays well under a minute. The webhook operations that
take a URL (create, change) are left out here: the SSRF guard would resolve generated host names (their own
tests cover them); the others run against made-up ids and must answer documented problems.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.schemas import APIOperation

from api.app import create_app
from pipeline.settings import ApiToken, Settings

# No 5xx, and responses as documented. Not "schema-valid requests are accepted": some rules cannot be written in
# OpenAPI (end after start, at most 31 days, a cursor this API handed out) and answer 422, as documented.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
TOKEN = "schema-admin-token-0123456789"


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The API tests' settings (tests/api/conftest.py: a seeded history, a fresh Redis) with one admin token."""
    token = ApiToken.model_validate({"name": "schemathesis", "token": TOKEN, "scope": "admin"})
    return settings.model_copy(update={"api_tokens": [token]})


def _operations(app_settings: Settings) -> list[APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    takes_url = {("POST", "/v1/webhooks"), ("PATCH", "/v1/webhooks/{webhook_id}")}
    tested = [op for op in operations if (op.method.upper(), op.path) not in takes_url]
    assert len(tested) >= 23
    return tested


def test_no_server_errors_and_responses_match_the_schema(app_settings: Settings):
    # Each operation's strategy driven by hypothesis directly (schemathesis' pytest fixture loader does not run
    # under pytest 9).
    for operation in _operations(app_settings):

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

        check()


def test_malformed_requests_are_refused_never_a_server_error(app_settings: Settings):
    # Requests that break the schema (wrong types, bad JSON, bytes that are not UTF-8…): a 4xx problem, not a 500.
    with_inputs = [op for op in _operations(app_settings) if op.path_parameters or op.query or op.body]
    assert len(with_inputs) >= 18
    for operation in with_inputs:

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[checks.not_a_server_error])

        check()
