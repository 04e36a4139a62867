"""Property-based requests generated from the OpenAPI schema, authenticated, against the ASGI app on a
temporary embedded home: no response may be a 5xx, and every documented response must match its schema.
Bounded (a few dozen examples per operation) so it stays well under a minute on two cores."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.api_clients import new_token

pytestmark = pytest.mark.slow


@pytest.fixture
def auth_headers(embedded, monkeypatch):
    monkeypatch.setattr(embedded, "job_create_per_minute", 1e6)
    monkeypatch.setattr(embedded, "job_create_burst", 1_000_000)
    return {"Authorization": f"Bearer {new_token('fuzzer')}"}


def _schema():
    from api.main import create_app

    return schemathesis.openapi.from_asgi("/openapi.json", create_app())  # settings are read per request


schema = _schema()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_5xx(case, auth_headers):
    case.call_and_validate(headers=auth_headers, checks=[not_a_server_error, response_schema_conformance])
